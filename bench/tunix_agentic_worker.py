"""Runs INSIDE bench/.venv-tunix (google-tunix 0.1.7): the demo workload through Tunix's agentic path.

    bench/.venv-tunix/bin/python bench/tunix_agentic_worker.py SPEC.json   (driven by bench_tunix_agentic.py)

Tunix's own pieces: RolloutOrchestrator -> TrajectoryCollectEngine (one per rollout, collect_mode
"Token" as AgenticRLLearner uses it) -> ToolAgent + ToolEnvironment + ToolManager (BaseTool) +
QwenToolParser, the model served by VanillaRollout (its Sampler) on tunix.models.llama3 loaded with
its safetensors loader; the default executor sized max_concurrency + 1 as AgenticRLLearner does.
Ours, where Tunix asks the user for them: the chat parser (our plain System/User/Assistant layout,
tool responses inline as our host writes them), the search tool (our tools/http_client.py and
tools/search.py, stdlib-only modules, against the same search server as our ToolSet), two ToolAgent hooks (no Qwen tools prompt appended to
the system prompt, no "Tool returned result: " prefix: our policy was trained without either), a
per-rollout token budget (engine subclass), and `model_call` (AgenticRLLearner._model_call's
parse + generate, capping a turn at max_turn_tokens and putting back the stop tag Tunix's Sampler
cuts from its output).

Protocol: prints "@@ready"; then per stdin line "run" one "@@{json}" line (wall seconds + rollouts),
"quit" exits. Lines without the "@@" prefix are Tunix's own prints.
"""

import asyncio
import concurrent.futures
import dataclasses
import functools
import json
import os
import sys
import time

import numpy as np
import transformers
from tunix.models.llama3 import model as llama3_model
from tunix.models.llama3 import params as llama3_params
from tunix.rl.agentic import utils as agentic_utils
from tunix.rl.agentic.agents import tool_agent
from tunix.rl.agentic.environments import tool_environment
from tunix.rl.agentic.parser.chat_template_parser import parser as chat_parser_lib
from tunix.rl.agentic.pipeline import rollout_orchestrator
from tunix.rl.agentic.tools import base_tool
from tunix.rl.agentic.trajectory import trajectory_collect_engine
from tunix.rl.rollout import base_rollout, vanilla_rollout
from tunix.utils import token_sanitization

SPEC: dict = {}


# ---- our search client and result text: the very functions our ToolSet uses ---------------------
# tools/http_client.py and tools/search.py import only the standard library (and tools/base.py), so
# they load here without our jax; the rest of egrpo_jax stays out of Tunix's interpreter.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from egrpo_jax.tools.http_client import HttpSearchBackend  # noqa: E402
from egrpo_jax.tools.search import format_search  # noqa: E402

BACKEND: list = []  # the HttpSearchBackend to SPEC['search_url'], made by main()


class SearchTool(base_tool.BaseTool):
    """Search the document collection. Returns the top results (title, snippet, url) for each query."""

    def get_json_schema(self):
        return {"type": "function", "function": SPEC["search_schema"]}

    def apply(self, query=None, **_):
        t = SPEC["tools"]
        qs = [query] if isinstance(query, str) else list(query or [])
        qs = [q.strip()[: t["max_query_chars"]] for q in qs if isinstance(q, str) and q.strip()]
        note = ""
        if len(qs) > t["max_queries"]:
            qs, note = qs[: t["max_queries"]], f"(only the first {t['max_queries']} queries were used)"
        if not qs:
            return base_tool.ToolOutput(name=self.name, error="search needs a non-empty query list")
        hits = BACKEND[0].search(qs, t["topk"])
        return base_tool.ToolOutput(name=self.name, output=format_search(qs, hits, t["snippet_chars"], note))


class PlainParser(chat_parser_lib.BaseChatTemplateParser):
    """Our layout without a chat template (agent/template.py `_plain`): "System: S\\n\\nUser: Q\\n\\n
    Assistant: " then the model's segments with each tool response inline as the host appends it."""

    def _init_tokens(self):
        return chat_parser_lib.TokenConfig()

    def _init_generation_prompt(self):
        return "Assistant: "

    def parse(self, messages, add_generation_prompt=False, is_first_msg=False):
        out, prev = [], None
        for m in messages:
            role, c = m["role"], token_sanitization.sanitize_control_tokens(m["content"])
            if role == "system":
                out.append(f"System: {c}\n\n")
            elif role == "user":
                out.append(f"User: {c}\n\n")
            elif role == "assistant":
                out.append(("Assistant: " if prev == "user" else "") + c)
            elif role == "tool":
                out.append(f"\n<tool_response>\n{c}\n</tool_response>\n")
            prev = role
        if add_generation_prompt and prev == "user":
            out.append(self.generation_prompt)
        return "".join(out)


class PlainToolAgent(tool_agent.ToolAgent):
    """ToolAgent (Qwen tool parser, ToolManager) with our prompt: the system prompt as given (it
    describes the tools already) and tool outputs as the message content."""

    def _init_messages(self, system_prompt):
        self._messages = [{"role": "system", "content": system_prompt}]

    def _observation_to_messages(self, observation, reward, done, info):
        if isinstance(observation, dict) and "tool_outputs" in observation:
            for call_id, output in observation["tool_outputs"].items():
                self._messages.append({"role": "tool", "tool_call_id": call_id, "content": output or ""})
        else:
            super()._observation_to_messages(observation, reward, done, info)


class BudgetEngine(trajectory_collect_engine.TrajectoryCollectEngine):
    """max_response_length per rollout: our max_total_tokens less that rollout's prompt."""

    def __init__(self, agent, env, **kw):
        kw["max_response_length"] = env.task["max_response_length"]
        super().__init__(agent, env, **kw)


def _strip_pad(ids, pad):
    ids = np.asarray(ids).tolist()
    i = 0
    while i < len(ids) and ids[i] == pad:
        i += 1
    return ids[i:]


def main(path):
    with open(path) as f:
        SPEC.update(json.load(f))
    BACKEND.append(HttpSearchBackend(SPEC["search_url"]))
    c = SPEC["config"]
    cfg = llama3_model.ModelConfig(
        num_layers=c["num_layers"], vocab_size=c["vocab_size"], embed_dim=c["hidden_size"],
        hidden_dim=c["intermediate_size"], num_heads=c["num_heads"], head_dim=c["head_dim"],
        num_kv_heads=c["num_kv_heads"], rope_theta=int(c["rope_theta"]), norm_eps=c["rms_norm_eps"],
        weight_tying=c["tie_embeddings"],
    )
    # Tunix 0.1.7 bug: llama3 Attention.block calls apply_rope() without rope_theta=config.rope_theta,
    # so every llama3 model gets RoPE at the function's default 1e6 (the demo policy: 1e4; greedy
    # rollouts diverge a few tokens in). Rebind the module function to the config's theta (same ops).
    llama3_model.apply_rope = functools.partial(llama3_model.apply_rope, rope_theta=cfg.rope_theta)
    model = llama3_params.create_model_from_safe_tensors(SPEC["hf_dir"], cfg)
    tok = transformers.AutoTokenizer.from_pretrained(SPEC["hf_dir"])
    total, turn_cap = SPEC["max_total_tokens"], SPEC["max_turn_tokens"]
    rollout = vanilla_rollout.VanillaRollout(model, tok, base_rollout.CacheConfig(
        cache_size=SPEC["cache_size"], num_layers=cfg.num_layers, num_kv_heads=cfg.num_kv_heads, head_dim=cfg.head_dim))
    rcfg = base_rollout.RolloutConfig(max_tokens_to_generate=turn_cap, temperature=0.0, top_p=None, top_k=None,
                                      max_prompt_length=64, kv_cache_size=SPEC["cache_size"],
                                      eos_tokens=SPEC["eos_ids"] + list(SPEC["stop_tags"].values()))
    parser = PlainParser(tok)
    pad = tok.pad_token_id
    stop_ids = {tag: i for tag, i in SPEC["stop_tags"].items()}
    calls_log: dict[int, list] = {}

    def model_call(chat, env=None, max_generation_steps=None, **_):
        # AgenticRLLearner._model_call: chat_parser.parse(..., add_generation_prompt=True) -> generate.
        prompt = parser.parse(chat, add_generation_prompt=True, is_first_msg=True)
        steps = turn_cap if max_generation_steps is None else min(turn_cap, max_generation_steps)
        out = rollout.generate([prompt], dataclasses.replace(rcfg, max_tokens_to_generate=steps))
        ids, text = [int(x) for x in out.tokens[0]], out.text[0]
        if len(ids) < steps:  # ended on an eos_tokens id, which the Sampler drops: put the stop tag back
            opened = {tag: text.rfind(tag.replace("</", "<")) > text.rfind(tag) for tag in stop_ids}
            tag = next((t for t, o in opened.items() if o), None)
            ids.append(stop_ids[tag] if tag else SPEC["eos_ids"][0])
            text += tag or ""
        calls_log.setdefault(env.extra_kwargs["pair_index"], []).append(
            (_strip_pad(out.left_padded_prompt_tokens[0], pad), ids))
        return base_rollout.RolloutOutput(text=[text], logits=None, tokens=[np.array(ids, np.int32)],
                                          left_padded_prompt_tokens=out.left_padded_prompt_tokens, logprobs=None)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(max_workers=SPEC["max_concurrency"] + 1))

    async def collect_all():
        orch = rollout_orchestrator.RolloutOrchestrator(
            rollout_sync_lock=agentic_utils.RolloutSyncLock(), engine_cls=BudgetEngine,
            engine_kwargs=dict(model_call=model_call, tokenizer=rollout._sampler.tokenizer, chat_parser=parser,
                               timeout=600.0, overlong_filter=False),
            max_concurrency=SPEC["max_concurrency"])

        def pairs():
            for i, q in enumerate(SPEC["questions"]):
                agent = PlainToolAgent(system_prompt=SPEC["system_prompt"], tool_parser_name="qwen",
                                       tool_map={"search": SearchTool})
                env = tool_environment.ToolEnvironment(
                    {"question": q["question"], "max_response_length": total - q["prompt_len"]},
                    tool_map={"search": SearchTool}, max_steps=SPEC["max_tool_calls"] + 1, group_id=i, pair_index=i)
                yield agent, env

        producer = asyncio.create_task(orch.run_producers_from_stream(
            pairs(), group_size=1, group_key_fn=lambda i, env, traj: env.extra_kwargs["group_id"],
            collect_mode="Token"))
        await asyncio.sleep(0)
        items = []
        async for batch in orch.yield_batches(batch_size=1):
            items += batch
        await producer
        return items

    print("@@ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        calls_log.clear()
        t0 = time.perf_counter()
        items = loop.run_until_complete(collect_all())
        wall = time.perf_counter() - t0
        rollouts = []
        for it in sorted(items, key=lambda it: it.pair_index):
            tr = it.traj
            rollouts.append({
                "status": tr["status"],
                "tokens": _strip_pad(tr["prompt_tokens"], pad) + [int(x) for x in tr["conversation_tokens"]],
                "messages": [{"role": m["role"], "content": m["content"]} for m in tr["conversation_text"]],
                "calls": calls_log[it.pair_index],
            })
        print("@@" + json.dumps({"wall_s": wall, "rollouts": rollouts}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
