"""The rollout engine: jit-compiled decode segments over one persistent, sharded KV cache.

Row state. Each row holds a token sequence s_0..s_{n-1}. The cache holds K/V of s_0..s_{n-2};
the last token s_{n-1} is *pending*: the next decode step feeds it at position n-1 and samples
s_n from its logits. So prefill writes a prompt minus its last token, `extend(tokens)` writes
[pending] + tokens[:-1] and makes tokens[-1] pending, and no step ever needs stored logits.

Shapes that reach jit are bucketed (powers of two): the chunk length of writes, the per-segment
output buffer, the number of rows decoded together (live rows are compacted into a smaller
bucket when half of them have finished, on meshes whose batch axis is not sharded) and the KV
window (attention reads only the first `window` cache slots, the bucket of the furthest
position the call can reach). Every executable is compiled ahead of time once per bucket key
and counted in `compile_count` / `compile_seconds`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from egrpo_jax.mesh import single_device_mesh
from egrpo_jax.models.kv_cache import cache_shardings, init_cache
from egrpo_jax.models.sharding import is_abstract
from egrpo_jax.sampling import sampling as smp
from egrpo_jax.sampling.api import BUDGET, EOS, LENGTH, STOP, SamplingParams, Segment
from egrpo_jax.sampling.stops import StopTable
from egrpo_jax.tokenizer_api import TokenizerLike

# Compiled executables, keyed by (model config, bucket key, argument signature).
_EXECUTABLES: dict[tuple, object] = {}

# Stop-reason codes inside the jitted loop (0 = still running).
_REASONS = {1: STOP, 2: EOS, 3: LENGTH, 4: BUDGET}


def bucket(n: int, minimum: int = 1) -> int:
    """The smallest power of two >= max(n, minimum)."""
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()


def _model_mesh(model) -> Mesh | None:
    for leaf in jax.tree.leaves(nnx.state(model)):
        sh = getattr(leaf, "sharding", None)
        if isinstance(sh, NamedSharding):
            return sh.mesh
    return None


class Engine:
    """A batch of `num_rows` independent rows over one KV cache (implements RolloutEngine)."""

    def __init__(
        self,
        model,
        *,
        num_rows: int,
        max_len: int,
        sampling: SamplingParams | None = None,
        stop_sequences: Sequence[Sequence[int]] = (),
        eos_ids: Sequence[int] = (),
        stops: StopTable | None = None,
        mesh: Mesh | None = None,
        cache_dtype: str | None = None,
        pad_id: int = 0,
        prefill_chunk: int = 512,
        compact: bool | None = None,
        min_rows_bucket: int = 8,
        min_window: int = 128,
    ):
        cfg = model.cfg
        if num_rows < 1:
            raise ValueError(f"engine.num_rows must be >= 1, got {num_rows}")
        if max_len < 2:
            raise ValueError(f"engine.max_len must be >= 2, got {max_len}")
        if prefill_chunk < 1 or prefill_chunk & (prefill_chunk - 1):
            raise ValueError(f"engine.prefill_chunk must be a power of two, got {prefill_chunk}")
        sampling = SamplingParams() if sampling is None else sampling
        if not isinstance(sampling, SamplingParams):
            raise TypeError(f"engine.sampling must be a SamplingParams, got {type(sampling).__name__}")
        self.model = model
        self.cfg = cfg
        self.num_rows = int(num_rows)
        self.max_len = int(max_len)
        self.sampling = sampling
        self.pad_id = int(pad_id)
        self.prefill_chunk = int(prefill_chunk)
        self.min_rows_bucket = int(min_rows_bucket)
        self.min_window = int(min_window)
        self.mesh = mesh or _model_mesh(model) or single_device_mesh()
        if compact is None:
            # Moving cache rows between batch shards costs communication: compact only when the
            # batch axis lives on one device (single chip, or pure tensor parallelism).
            compact = self.mesh.shape["data"] * self.mesh.shape["fsdp"] == 1
        self.compact = bool(compact)

        # Stops: an automaton over tokens (sampling.stops): from text stop strings (robust to BPE
        # merges) or from exact id sequences. Its states are padded to a bucket so engines share
        # executables; padding states are never reached.
        if stops is not None and len(stop_sequences):
            raise ValueError("engine: give stops or stop_sequences, not both")
        self.stops = stops if stops is not None else StopTable.from_ids(stop_sequences, cfg.vocab_size)
        if self.stops.table.shape[1] != cfg.vocab_size:
            raise ValueError(f"engine.stops covers {self.stops.table.shape[1]} token ids; the model has "
                             f"{cfg.vocab_size}")
        self.eos_ids = self._check_ids(eos_ids, "engine.eos_ids")
        table = np.zeros((bucket(self.stops.num_states, 8), cfg.vocab_size), np.int32)
        table[: self.stops.num_states] = self.stops.table
        self._stop_table = table
        self._eos = np.full(bucket(len(self.eos_ids), 4), -1, np.int32)  # -1 never matches
        self._eos[: len(self.eos_ids)] = self.eos_ids

        self._cache_sh = cache_shardings(cfg, self.num_rows, self.max_len, self.mesh)
        self._repl = NamedSharding(self.mesh, P())
        # over an abstract model (models.sharding.abstract_sharded_model) the engine only compiles:
        # its cache and every argument are shapes with shardings (compile_decode / compile_write)
        self.abstract = is_abstract(nnx.state(model))
        self._stop_dev = self._put(self._stop_table)  # placed once: [states, vocab] can be MBs
        self.cache = init_cache(cfg, self.num_rows, self.max_len, cache_dtype, self.mesh, abstract=self.abstract)
        self._graphdef = nnx.graphdef(model)
        self._state = None
        n = self.num_rows
        self._len = np.zeros(n, np.int64)
        self._pending = np.zeros(n, np.int32)
        self._live = np.zeros(n, bool)  # the row holds a sequence (a free slot does not)
        # A live row is either paused (waiting for the host: a tool response, or its next segment)
        # or decoding one segment, whose state survives across decode() calls:
        self._decoding = np.zeros(n, bool)
        self._budget = np.zeros(n, np.int64)  # this segment's token budget
        self._produced = np.zeros(n, np.int64)  # tokens decoded in this segment so far
        self._stop_state = np.zeros(n, np.int32)  # stop automaton state (host text never starts a stop)
        self._acc: list[tuple[list, list, list]] = [([], [], []) for _ in range(n)]
        # Sampling keys come from (seed, stream id, position) per row, not from the slot index, so a
        # rollout draws the same random stream in whichever slot it runs.
        self._seed = 0
        self._kid = np.arange(n, dtype=np.int32)
        self._used: set[tuple] = set()
        self.compile_count = 0  # compilations this engine caused (executables are shared)
        self.compile_seconds = 0.0
        # decode work since construction: jitted calls, steps, rows x steps run, tokens written
        # (tokens / row_steps = the share of decode compute that produced a token)
        self.decode_stats = {"calls": 0, "steps": 0, "row_steps": 0, "tokens": 0}

    @classmethod
    def for_tokenizer(cls, model, tokenizer: TokenizerLike, *, num_rows: int, max_len: int,
                      sampling: SamplingParams | None = None, stops: Sequence[str] | StopTable = (),
                      **kw) -> Engine:
        """The engine for a tokenizer: its EOS ids end a row, its pad id fills idle slots, and `stops`
        (strings, matched on the decoded text of its tokens, or a StopTable) end a segment. Every
        engine of the stack is built here (assembly.build_engine for runs, generate() for one-shot)."""
        table = stops if isinstance(stops, StopTable) else StopTable.for_tokenizer(
            list(stops), tokenizer, model.cfg.vocab_size)
        return cls(model, num_rows=num_rows, max_len=max_len, sampling=sampling, stops=table,
                   eos_ids=tokenizer.eos_ids, pad_id=tokenizer.pad_id, **kw)

    # ------------------------------------------------------------------ public API
    def compile_keys(self) -> list[tuple]:
        """The bucket keys of every executable this engine has run (its fixed compile set)."""
        return sorted(self._used, key=str)

    def compile_decode(self, steps: int):
        """The executable of the largest decode call: every row, the whole cache as the attention window,
        an output buffer of `steps` tokens (decode's bucket of the segment budget). Its
        `memory_analysis()` is the decode's per-device memory (rl.memory_plan; works on an abstract engine)."""
        self._require_started("compile_decode")
        rows, live = self._rows_for(list(range(self.num_rows)))
        rem = np.full(len(rows), steps, np.int64)
        tb = bucket(steps, 16)
        return self._executable(*self._decode_call(rows, live, rem, tb, self.max_len, tb, refill=False))

    def compile_write(self):
        """The executable of the largest write (prefill / extend): every row, a prefill_chunk-token chunk,
        the whole cache as the window; see compile_decode."""
        self._require_started("compile_write")
        chunk = min(self.prefill_chunk, bucket(self.max_len, 16))
        tok = np.full((self.num_rows, chunk), self.pad_id, np.int32)
        pos = np.tile(np.arange(self.max_len - chunk, self.max_len, dtype=np.int32), (self.num_rows, 1))
        return self._executable(*self._write_call(tok, pos, self.max_len, None, ()))

    def lengths(self) -> np.ndarray:
        return self._len.astype(np.int32)

    def live(self) -> np.ndarray:
        return self._live.copy()

    def decoding(self) -> np.ndarray:
        """Rows in the middle of a segment (begun, not yet ended)."""
        return self._decoding.copy()

    def reset(self, *, seed: int = 0, params=None) -> None:
        """Every row becomes free; snapshots the model's current parameters (so a policy updated in
        place between rollouts is picked up here), or samples from `params`, an nnx.State of the
        same model (a copy that an update running meanwhile cannot donate away)."""
        self._state = nnx.state(self.model) if params is None else params
        self._len[:] = 0
        self._live[:] = False
        self._decoding[:] = False
        self._pending[:] = self.pad_id
        self._seed = int(seed)
        self._kid[:] = np.arange(self.num_rows)

    def start(self, prompts: Sequence[Sequence[int]], *, seed: int = 0) -> None:
        """reset(seed), then prefill rows 0..len(prompts)-1 with their prompts (stream id = row)."""
        if not 1 <= len(prompts) <= self.num_rows:
            raise ValueError(f"start: got {len(prompts)} prompts for an engine of {self.num_rows} rows")
        self.reset(seed=seed)
        self.insert(range(len(prompts)), prompts)

    def insert(self, rows: Sequence[int], prompts: Sequence[Sequence[int]], *,
               stream_ids: Sequence[int] | None = None) -> None:
        """Prefill free rows with prompts (one chunked write; other rows keep decoding state). Each
        row samples from (the reset seed, stream_ids[i] or the row index, position)."""
        self._require_started("insert")
        rows = [self._check_row(r, "insert") for r in rows]
        if len(rows) != len(prompts):
            raise ValueError(f"insert: {len(rows)} rows but {len(prompts)} prompts")
        if stream_ids is not None and len(stream_ids) != len(rows):
            raise ValueError(f"insert: {len(rows)} rows but {len(stream_ids)} stream_ids")
        if len(set(rows)) != len(rows):
            raise ValueError(f"insert: duplicate rows in {rows}")
        writes = {}
        for i, (r, p) in enumerate(zip(rows, prompts)):
            if self._live[r]:
                raise ValueError(f"insert: row {r} is in use (mark_done it first)")
            ids = self._check_ids(p, f"insert: prompts[{i}]")
            if not ids:
                raise ValueError(f"insert: prompts[{i}] is empty")
            if len(ids) > self.max_len:
                raise ValueError(f"insert: prompts[{i}] has {len(ids)} tokens > max_len {self.max_len}")
            if len(ids) > 1:
                writes[r] = (0, ids[:-1])
            self._len[r], self._pending[r], self._live[r], self._decoding[r] = len(ids), ids[-1], True, False
            self._kid[r] = r if stream_ids is None else int(stream_ids[i])
        self._write(writes)

    def extend(self, rows: Sequence[int], tokens: Sequence[Sequence[int]]) -> None:
        """Append host tokens to each given (paused) row at its own position (one chunked write)."""
        self._require_started("extend")
        if len(rows) != len(tokens):
            raise ValueError(f"extend: {len(rows)} rows but {len(tokens)} token lists")
        if len({int(r) for r in rows}) != len(rows):
            raise ValueError(f"extend: duplicate rows in {list(rows)}")
        writes, last = {}, {}
        for r, t in zip(rows, tokens):
            r = self._check_row(r, "extend")
            ids = self._check_ids(t, f"extend: tokens for row {r}")
            if not ids:
                continue
            if not self._live[r]:
                raise ValueError(f"extend: row {r} is done")
            if self._decoding[r]:
                raise ValueError(f"extend: row {r} is in the middle of a segment")
            if self._len[r] + len(ids) > self.max_len:
                raise ValueError(
                    f"extend: row {r} holds {self._len[r]} tokens; +{len(ids)} exceeds max_len {self.max_len}"
                )
            writes[r] = (int(self._len[r]) - 1, [int(self._pending[r])] + ids[:-1])
            last[r] = ids[-1]
        self._write(writes)
        for r, (_, seq) in writes.items():
            self._pending[r] = last[r]
            self._len[r] += len(seq)

    def mark_done(self, rows: Sequence[int]) -> None:
        """Rows that take no further part: their slots are free for insert."""
        for r in rows:
            r = self._check_row(r, "mark_done")
            self._live[r] = self._decoding[r] = False

    def begin(self, rows: Sequence[int], max_new_tokens: int | Sequence[int]) -> None:
        """Paused rows start a segment of at most max_new_tokens tokens (one budget, or one per row)."""
        self._require_started("begin")
        rows = [self._check_row(r, "begin") for r in rows]
        budgets = [int(max_new_tokens)] * len(rows) if isinstance(max_new_tokens, (int, np.integer)) \
            else [int(b) for b in max_new_tokens]
        if len(budgets) != len(rows):
            raise ValueError(f"begin: {len(rows)} rows but {len(budgets)} budgets")
        for r, b in zip(rows, budgets):
            if b < 0:
                raise ValueError(f"begin: max_new_tokens must be >= 0, got {b}")
            if not self._live[r]:
                raise ValueError(f"begin: row {r} is done")
            if self._decoding[r]:
                raise ValueError(f"begin: row {r} is already decoding")
            self._decoding[r], self._budget[r], self._produced[r], self._stop_state[r] = True, b, 0, 0
            self._acc[r] = ([], [], [])

    def decode(self, max_steps: int = 0) -> dict[int, Segment]:
        """Decode every decoding row for up to `max_steps` steps (0: until each one's segment ends).

        Returns {row: Segment} for the rows whose segment ended (they become paused); the others
        keep their partial segment and continue at the next call. A bounded call returns early,
        once a quarter of its rows have ended, so the host can refill them.
        """
        self._require_started("decode")
        if max_steps < 0:
            raise ValueError(f"decode: max_steps must be >= 0, got {max_steps}")
        out: dict[int, Segment] = {}
        active = []
        for r in np.flatnonzero(self._decoding):
            r = int(r)
            if self._len[r] >= self.max_len:
                self._end(r, LENGTH, -1, out)
            elif self._produced[r] >= self._budget[r]:
                self._end(r, BUDGET, -1, out)
            else:
                active.append(r)
        # The output buffer (a compile key) is sized once per call from the segments' budgets.
        span = int(self._budget[active].max()) if active else 0
        tb = bucket(min(span, max_steps) if max_steps else span, 16)
        steps = 0
        while active and (max_steps == 0 or steps < max_steps):
            limit = tb if max_steps == 0 else min(tb, max_steps - steps)  # tb: the output buffer
            rows, live = self._rows_for(active)
            rem = np.where(live, self._budget[rows] - self._produced[rows], 0)
            # a row can reach no further than its budget, the cache, or this call's step limit
            reach = self._len[rows] + np.minimum(np.minimum(rem, self.max_len - self._len[rows]), limit) - 1
            # Attention reads the first `window` slots. A window for the whole budget would read a
            # 4k cache from the first token on; the call instead covers up to twice the longest
            # row (so a long segment takes a logarithmic number of calls) and stops where the
            # longest row reaches the window's end. A bounded block (max_steps) only needs its
            # own steps: 16 steps from position 300 read 512 slots, not 1024.
            cur = int(self._len[rows][live].max())
            window = min(self.max_len, bucket(min(int(reach[live].max()), 2 * cur), self.min_window))
            limit = min(limit, window - cur + 1)
            res = self._run_decode(rows, live, rem, tb, window, limit, refill=max_steps > 0)
            o_tok, o_lp, o_raw, count, reason, stop_idx, win, pending, ran = res
            steps += int(ran)
            st = self.decode_stats
            st["calls"] += 1
            st["steps"] += int(ran)
            st["row_steps"] += int(ran) * len(rows)
            st["tokens"] += int(count[live].sum())
            still = []
            for i in np.flatnonzero(live):
                r = int(rows[i])
                c = int(count[i])
                acc = self._acc[r]
                acc[0].extend(o_tok[i, :c].tolist())
                acc[1].extend(o_lp[i, :c].tolist())
                acc[2].extend(o_raw[i, :c].tolist())
                self._produced[r] += c
                self._len[r] += c
                self._pending[r] = pending[i]
                self._stop_state[r] = win[i]
                code = int(reason[i])
                if code:
                    self._end(r, _REASONS[code], int(stop_idx[i]) if code == 1 else -1, out)
                else:
                    still.append(r)
            active = still
            if max_steps and out:  # a bounded block returns its ended rows for the host to refill
                break
        return out

    def decode_segment(self, max_new_tokens: int | Sequence[int]) -> list[Segment | None]:
        """Every live row decodes one whole segment (see RolloutEngine): begin + decode(0)."""
        self._require_started("decode_segment")
        if isinstance(max_new_tokens, (int, np.integer)):
            budget = np.full(self.num_rows, int(max_new_tokens), np.int64)
        else:
            budget = np.asarray(list(max_new_tokens), np.int64)
            if budget.shape != (self.num_rows,):
                raise ValueError(
                    f"decode_segment: max_new_tokens has {budget.size} entries, expected {self.num_rows}"
                )
        if (budget < 0).any():
            raise ValueError(f"decode_segment: max_new_tokens must be >= 0, got {budget.min()}")
        rows = [int(r) for r in np.flatnonzero(self._live & ~self._decoding)]
        self.begin(rows, budget[rows].tolist())
        ended = self.decode(0)
        return [ended.get(r) for r in range(self.num_rows)]

    def _end(self, r: int, reason: str, idx: int, out: dict[int, Segment]) -> None:
        toks, lps, raws = self._acc[r]
        out[r] = Segment(toks, lps, raws, reason, idx)
        self._acc[r] = ([], [], [])
        self._decoding[r] = False

    # ------------------------------------------------------------------ internals
    def _require_started(self, what: str) -> None:
        if self._state is None:
            raise RuntimeError(f"{what}: call start(prompts) first")

    def _check_row(self, r, what: str) -> int:
        r = int(r)
        if not 0 <= r < self.num_rows:
            raise ValueError(f"{what}: row {r} out of range [0, {self.num_rows})")
        return r

    def _check_ids(self, ids, what: str) -> list[int]:
        arr = np.asarray(list(ids))
        if arr.size == 0:
            return []
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{what}: expected a flat list of int token ids, got dtype {arr.dtype} shape {arr.shape}")
        bad = arr[(arr < 0) | (arr >= self.cfg.vocab_size)]
        if bad.size:
            raise ValueError(f"{what}: token id {int(bad[0])} outside [0, {self.cfg.vocab_size})")
        return [int(x) for x in arr]

    def _rows_for(self, active: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Global row indices for one decode call and which of them decode.

        All rows in order when the bucket is the whole batch (no gather needed); otherwise the
        active rows then distinct finished rows as filler (they are parked, so their cache rows
        are written back unchanged).
        """
        size = bucket(len(active), self.min_rows_bucket) if self.compact else self.num_rows
        if size >= self.num_rows:
            live = np.zeros(self.num_rows, bool)
            live[active] = True
            return np.arange(self.num_rows, dtype=np.int32), live
        chosen = set(active)
        filler = [r for r in range(self.num_rows) if r not in chosen][: size - len(active)]
        live = np.arange(size) < len(active)
        return np.asarray(active + filler, np.int32), live

    def _put(self, x) -> jax.Array:
        x = np.asarray(x)
        if self.abstract:
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=self._repl)
        return jax.device_put(x, self._repl)

    def _call(self, key: tuple, make_fn, args: tuple):
        """Run the executable for (key, argument signature), compiling it ahead of time once."""
        return self._executable(key, make_fn, args)(*args)

    def _executable(self, key: tuple, make_fn, args: tuple):
        """The compiled executable for (key, argument signature), compiled ahead of time once.

        Executables live in a process-wide table, so engines over the same model config share
        them (a train and an eval engine, or successive tests); `compile_count` counts the
        compilations this engine caused.
        """
        leaves, tree = jax.tree.flatten(args)
        sig = (repr(self.cfg), key, tree, tuple((x.shape, x.dtype, x.sharding) for x in leaves))
        exe = _EXECUTABLES.get(sig)
        if exe is None:
            t0 = time.perf_counter()
            out_sh = (self._cache_sh, self._repl)
            if key[0] == "write":
                out_sh = out_sh[0]
            exe = jax.jit(make_fn(), donate_argnums=(1,), out_shardings=out_sh).lower(*args).compile()
            self.compile_seconds += time.perf_counter() - t0
            self.compile_count += 1
            _EXECUTABLES[sig] = exe
        self._used.add(key)
        return exe

    def _write(self, writes: dict[int, tuple[int, list[int]]]) -> None:
        """Write token runs {row: (first position, ids)} into the cache, chunk by chunk.

        With compaction, only the written rows (padded to a power of two with parked filler rows)
        run through the model: a rollout prefilled into one free row, or one row's tool response,
        costs that row's tokens, not the whole batch's."""
        if not writes:
            return
        size = bucket(len(writes)) if self.compact else self.num_rows
        if size >= self.num_rows:
            size, rows = self.num_rows, None
        else:
            chosen = sorted(writes)
            rows = chosen + [r for r in range(self.num_rows) if r not in writes][: size - len(chosen)]
        longest = max(len(ids) for _, ids in writes.values())
        chunk = min(bucket(longest, 16), self.prefill_chunk)
        n_chunks = -(-longest // chunk)
        tok = np.full((size, n_chunks * chunk), self.pad_id, np.int32)
        pos = np.full((size, n_chunks * chunk), self.max_len, np.int32)
        for i, r in enumerate(rows if rows is not None else range(self.num_rows)):
            if r in writes:
                p0, ids = writes[r]
                tok[i, : len(ids)] = ids
                pos[i, : len(ids)] = np.arange(p0, p0 + len(ids))
        row_arg = () if rows is None else (self._put(np.asarray(rows, np.int32)),)
        for c in range(n_chunks):
            ct, cp = tok[:, c * chunk:(c + 1) * chunk], pos[:, c * chunk:(c + 1) * chunk]
            written = cp[cp < self.max_len]
            if written.size == 0:
                continue
            window = min(self.max_len, bucket(int(written.max()) + 1, self.min_window))
            self.cache = self._call(*self._write_call(ct, cp, window, rows, row_arg))

    def _write_call(self, tokens, positions, window: int, rows, row_arg: tuple):
        """(key, make_fn, args) of one chunk's write; `row_arg` holds the placed `rows` (none: every row)."""
        key = ("write", tokens.shape[1], window, tokens.shape[0])
        args = (self._state, self.cache, self._put(tokens), self._put(positions), *row_arg)
        return key, lambda: self._write_fn(window, rows is not None), args

    def _write_fn(self, window: int, gather: bool):
        graphdef = self._graphdef

        def fn(state, cache, tokens, positions, rows=None):
            model = nnx.merge(graphdef, state)
            small = cache.take_rows(rows, window) if gather else cache.window(window)
            positions = jnp.minimum(positions, window)  # padding parks at `window`: dropped
            _, small = model.hidden(tokens, positions, cache=small)
            return cache.put_rows(rows, small) if gather else cache.put_window(small)

        return fn

    def _run_decode(self, rows, live, rem, tb: int, window: int, limit: int, *, refill: bool):
        """One jitted call; it returns early once few enough rows are still live (`min_live`):
        - half of a compactable bucket: the host then decodes the rest in a smaller bucket;
        - a quarter of the live rows, in bounded blocks (`refill`): the host can hand those rows
          their tool responses or new rollouts now instead of idling them to the block's end.
        (A traced argument, not a compile key.)"""
        self.cache, outs = self._call(*self._decode_call(rows, live, rem, tb, window, limit, refill=refill))
        return jax.device_get(outs)

    def _decode_call(self, rows, live, rem, tb: int, window: int, limit: int, *, refill: bool):
        """(key, make_fn, args) of one decode call (see _run_decode)."""
        n_live = int(live.sum())
        min_live = len(rows) // 2 if self.compact and len(rows) > self.min_rows_bucket else 0
        if refill:
            min_live = max(min_live, n_live - max(1, n_live // 4))
        key = ("decode", len(rows), tb, window, self.sampling, self.pad_id)
        args = (
            self._state,
            self.cache,
            self._put(rows.astype(np.int32)),
            self._put(np.int32(self._seed)),
            self._put(self._kid[rows].astype(np.int32)),
            self._put(self._pending[rows].astype(np.int32)),
            self._put((self._len[rows] - 1).astype(np.int32)),
            self._put(live),
            self._put(rem.astype(np.int32)),
            self._put(self._stop_state[rows].astype(np.int32)),
            self._put(np.int32(limit)),
            self._put(np.int32(min_live)),
            self._stop_dev,
            self._put(self._eos),
        )
        return key, lambda: self._decode_fn(len(rows), tb, window), args

    def _decode_fn(self, n_rows: int, tb: int, window: int):
        graphdef = self._graphdef
        params = self.sampling
        full_rows = n_rows == self.num_rows  # rows are then 0..num_rows-1 in order
        max_len = self.max_len
        pad = self.pad_id

        def fn(state, cache, rows, seed, kids, pending, pos, live, rem, stop_state, limit, min_live, stop_table, eos):
            model = nnx.merge(graphdef, state)
            small = cache.window(window) if full_rows else cache.take_rows(rows, window)
            b = n_rows
            zeros_i = jnp.zeros((b, tb), jnp.int32)
            zeros_f = jnp.zeros((b, tb), jnp.float32)
            init = {
                "step": jnp.int32(0), "cache": small, "pending": pending, "pos": pos, "live": live,
                "count": jnp.zeros(b, jnp.int32), "reason": jnp.zeros(b, jnp.int32),
                "stop_idx": jnp.full(b, -1, jnp.int32), "win": stop_state,
                "tok": zeros_i, "lp": zeros_f, "raw": zeros_f,
            }

            def cond(c):
                return (c["step"] < limit) & (jnp.sum(c["live"]) > min_live)

            def body(c):
                live = c["live"]
                qpos = jnp.where(live, c["pos"], window)  # finished rows write nowhere
                logits, kv = model(c["pending"][:, None], qpos[:, None], cache=c["cache"])
                keys = smp.row_keys(seed, kids, c["pos"] + 1)
                tok, lp, raw = smp.sample(logits[:, 0], keys, params)
                tok = jnp.where(live, tok, pad)
                nxt = stop_table[c["win"], tok]  # next automaton state, or -(1 + stop index)
                stop_any = live & (nxt < 0)
                first = -nxt - 1
                win = jnp.where(live, jnp.maximum(nxt, 0), c["win"])
                count = c["count"] + live.astype(jnp.int32)
                is_eos = jnp.any(tok[:, None] == eos[None], -1)
                new_len = c["pos"] + 2
                # priority when several hold at once: stop > eos > budget > cache end
                code = jnp.where(
                    stop_any, 1,
                    jnp.where(is_eos, 2, jnp.where(count >= rem, 4, jnp.where(new_len >= max_len, 3, 0))),
                )
                code = jnp.where(live, code, 0)
                step = c["step"]
                return {
                    "step": step + 1, "cache": kv,
                    "pending": jnp.where(live, tok, c["pending"]),
                    "pos": jnp.where(live, c["pos"] + 1, c["pos"]),
                    "live": live & (code == 0), "count": count,
                    "reason": jnp.where(code > 0, code, c["reason"]),
                    "stop_idx": jnp.where(code == 1, first, c["stop_idx"]),
                    "win": win,
                    "tok": c["tok"].at[:, step].set(tok),
                    "lp": c["lp"].at[:, step].set(jnp.where(live, lp, 0.0)),
                    "raw": c["raw"].at[:, step].set(jnp.where(live, raw, 0.0)),
                }

            c = jax.lax.while_loop(cond, body, init)
            cache = cache.put_window(c["cache"]) if full_rows else cache.put_rows(rows, c["cache"])
            return cache, (c["tok"], c["lp"], c["raw"], c["count"], c["reason"], c["stop_idx"], c["win"], c["pending"],
                           c["step"])

        return fn
