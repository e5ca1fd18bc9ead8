import json

import pytest

from egrpo_jax.agent import template as T
from egrpo_jax.models.byte_tokenizer import ByteTokenizer


def test_plain_layout_without_chat_template():
    text = T.render_prompt(ByteTokenizer(), "Who?", style="short", tools=("search",))
    assert text == f"System: {T.system_prompt('short', ('search',))}\n\nUser: Who?\n\nAssistant: "
    assert "visit" not in text


class ChatTok(ByteTokenizer):
    """The tokenizer protocol with a chat template: apply_chat_template(messages, add_generation_prompt) -> str."""

    chat_template = "chatml"

    def __init__(self, system_ok=True):
        self.system_ok = system_ok

    def apply_chat_template(self, messages, add_generation_prompt=True):
        assert add_generation_prompt is True
        if not self.system_ok and messages[0]["role"] == "system":
            raise ValueError("System role not supported")
        return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages) + "<|im_start|>assistant\n"


def test_chat_template_system_and_user_turns():
    sys_ = T.system_prompt("full")
    assert T.render_prompt(ChatTok(), "Q?") == (
        f"<|im_start|>system\n{sys_}<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n")


def test_template_without_system_role_folds_it_into_the_user_turn():
    sys_ = T.system_prompt("short")
    assert T.render_prompt(ChatTok(system_ok=False), "Q?", style="short") == (
        f"<|im_start|>user\n{sys_}\n\nQ?<|im_end|>\n<|im_start|>assistant\n")


def test_only_a_refused_system_role_is_folded_other_template_errors_propagate():
    class Broken(ChatTok):
        def apply_chat_template(self, messages, add_generation_prompt=True):
            raise KeyError("messages")  # a bug in the template, not a refused role

    with pytest.raises(KeyError):
        T.render_prompt(Broken(), "Q?")
    assert T.render_prompt(None, "Q?", style="short") == T.render_prompt(ByteTokenizer(), "Q?", style="short")


def test_project_tokenizer_wrapper_uses_chatml_when_it_has_a_template():
    tk = pytest.importorskip("egrpo_jax.models.tokenizer")
    import tokenizers
    from tokenizers import models, pre_tokenizers

    bpe = tokenizers.Tokenizer(models.BPE(vocab={c: i for i, c in enumerate("abc")}, merges=[]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok = tk.Tokenizer.from_tokenizers(bpe, chat_template=tk.CHATML_TEMPLATE)
    out = T.render_prompt(tok, "Q?", style="short")
    assert out.startswith("<|im_start|>system\nAnswer by searching.") and out.endswith("<|im_start|>assistant\n")


def test_full_prompt_lists_valid_json_schemas():
    text = T.system_prompt("full")
    lines = [ln for ln in text.splitlines() if ln.startswith('{"name"')]
    assert [json.loads(ln)["name"] for ln in lines] == ["search", "visit"]
    assert json.loads(lines[0]) == T.TOOL_SCHEMAS["search"]
    assert len(T.system_prompt("short")) < len(text) // 2


def test_tool_response_text_and_stop_sequences():
    assert T.render_tool_response("hits") == "\n<tool_response>\nhits\n</tool_response>\n"
    tok = ByteTokenizer()
    assert T.stop_token_sequences(tok) == [tok.encode("</tool_call>"), tok.encode("</answer>")]


@pytest.mark.parametrize("kw", [{"style": "long"}, {"tools": ()}, {"tools": ("search", "browse")}])
def test_bad_prompt_options(kw):
    with pytest.raises(ValueError, match="prompt"):
        T.system_prompt(**kw)


def test_encode_many_is_one_encode_batch_call():
    class Batched(ByteTokenizer):
        calls = 0

        def encode_batch(self, texts):
            type(self).calls += 1
            return [self.encode(t) for t in texts]

    texts = ["a", "bc", ""]
    assert T.encode_many(Batched(), texts) == T.encode_many(ByteTokenizer(), texts) == [[98], [99, 100], []]
    assert Batched.calls == 1
