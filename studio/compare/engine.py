"""One copy of the base weights, any number of LoRA adapters on top, streamed side by side.

The base model is loaded once per base reference and wrapped with PEFT. The tuned column runs
with its adapter active; the base column runs with the adapter layers turned off (Engine._switch), so both
answers come from the same weights in memory. A full fine-tune has no adapter: its whole model is loaded
beside the base (one at a time, MAX_WHOLE_MODELS), the only case that holds two copies.
Generation is our own token loop over a KV cache per column, stepping the columns in turn, so
every column streams while the others do.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from studio import limits, mode
from studio.compare import runs
from studio.errors import StudioError
from studio.models import catalog, loading, precision
from studio.models.templates import prepare_messages
from studio.train import store

BASE = None  # the adapter name of the base column: adapters off
MAX_ADAPTERS = 4  # adapters kept loaded on one base (each is a few MB for small models)
NUCLEUS_HEAD = 256  # tokens sorted first when sampling: a chat model's nucleus (top_p) is nearly always smaller
MAX_WHOLE_MODELS = 1  # full fine-tunes kept loaded beside the base (each is a whole model's memory)

_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()
_DEFAULT_THREADS: int | None = None


# Fair decoding: every column (and the held-out evaluation) samples with the same settings and seed, and a
# repetition guard keeps a small base model from looping to the token limit, which would flatter the tuned
# model. A model's own generation_config sampling values win over these when it has them.
# Measured on the bundled SmolLM2-135M (6 prompts): greedy loops in 3 answers ("A far-off land of leaves" × N),
# temperature 0.7 without a guard in 1; with the guard none did, and 0.3 stayed closer to the facts than 0.7.
DEFAULT_TEMPERATURE = 0.3
DEFAULT_TOP_P = 0.9
DEFAULT_REPETITION_PENALTY = 1.1  # > 1 makes tokens already in the answer less likely
DEFAULT_NO_REPEAT_NGRAM = 0  # 0 = off; a hard ban would also forbid legitimate repeats (code, lists)

# A conversation is refused unread past these (check_size): no model reads more characters than this per
# position, and no one reads a chat of more turns.
CHARACTERS_PER_POSITION = 8
MAX_MESSAGES = 200


@dataclass
class Settings:
    """Decoding settings shared by every column. temperature 0 = greedy (the same answer every time)."""

    system_prompt: str = ""
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    top_k: int = 0  # 0 = no top-k cut
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    no_repeat_ngram_size: int = DEFAULT_NO_REPEAT_NGRAM
    max_new_tokens: int = 200
    seed: int = 0
    source: str = "studio defaults"  # where the sampling values came from, recorded with every evaluation

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0

    def record(self) -> dict:
        """What an evaluation saves about how its answers were generated."""
        return {
            "decoding": "greedy" if self.greedy else "sampling",
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "repetition_penalty": self.repetition_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
            "system_prompt": self.system_prompt,
            "source": self.source,
        }

    def describe(self) -> str:
        how = (
            "greedy decoding"
            if self.greedy
            else (
                f"sampling at temperature {self.temperature:g}, top-p {self.top_p:g}"
                + (f", top-k {self.top_k}" if self.top_k else "")
            )
        )
        guard = []
        if self.repetition_penalty and self.repetition_penalty != 1:
            guard.append(f"repetition penalty {self.repetition_penalty:g}")
        if self.no_repeat_ngram_size:
            guard.append(f"no repeated {self.no_repeat_ngram_size}-grams")
        return (
            f"{how}, {', '.join(guard) if guard else 'no repetition guard'}, seed {self.seed}, "
            f"up to {self.max_new_tokens} new tokens ({self.source})"
        )


def default_settings(generation_config=None, **overrides) -> Settings:
    """The fair defaults, taking the sampling values from a model's generation_config when it sets them."""
    values = {}
    source = "studio defaults (the model's generation_config sets no sampling values)"
    config = generation_config
    if config is not None and not getattr(config, "_from_model_config", False):
        found = {}
        if getattr(config, "do_sample", False):
            for key in ("temperature", "top_p", "top_k"):
                value = getattr(config, key, None)
                if isinstance(value, (int, float)) and value is not None:
                    found[key] = value
        for key in ("repetition_penalty", "no_repeat_ngram_size"):
            value = getattr(config, key, None)
            if isinstance(value, (int, float)) and value not in (None, 0, 1, 1.0):
                found[key] = value
        if found:
            values.update(found)
            source = "the model's generation_config (" + ", ".join(f"{k}={v:g}" for k, v in found.items()) + ")"
    if config is None:
        source = "studio defaults"
    values.update(source=source)
    values.update(overrides)
    return Settings(**values)


def check_settings(settings: Settings) -> None:
    """Refuse generation settings over this studio's limits (STUDIO_MAX_NEW_TOKENS); every generation path calls it."""
    if not isinstance(settings.max_new_tokens, int) or settings.max_new_tokens < 1:
        raise StudioError("Max new tokens must be a whole number of at least 1.", "Use something like 200.")
    limits.check_at_most("new_tokens", settings.max_new_tokens, "Max new tokens", "Lower 'max new tokens'.")


@dataclass
class ColumnState:
    label: str
    adapter: str | None
    prompt_ids: list[int]
    generated: list[int] = field(default_factory=list)
    text: str = ""
    done: bool = False
    finish_reason: str = ""
    compute_s: float = 0.0
    first_token_s: float | None = None
    started: float = 0.0
    cache: object = None
    next_input: list[int] = field(default_factory=list)
    generator: object = None

    @property
    def tokens_per_s(self) -> float:
        return len(self.generated) / self.compute_s if self.compute_s > 0 else 0.0

    def stats_line(self) -> str:
        if not self.generated:
            if self.finish_reason == "eos":  # a model may end its reply at once: say so, or it looks like a hang
                return "no answer: the model ended its reply at once (0 tokens)"
            return "stopped before the first token" if self.done else "waiting…"
        ttft = f" · first token {self.first_token_s:.2f} s" if self.first_token_s is not None else ""
        state = {"eos": "done", "length": "stopped at max tokens", "stopped": "stopped"}.get(
            self.finish_reason, "generating…"
        )
        return f"{len(self.generated)} tokens · {self.tokens_per_s:.1f} tokens/s{ttft} · {state}"


def _adapter_name(adapter_dir: Path) -> str:
    """PEFT adapter names become module keys: letters, digits and underscores only."""
    stem = re.sub(r"[^A-Za-z0-9_]", "_", f"{adapter_dir.parent.name}_{adapter_dir.name}")
    return f"a_{stem}"[:60]


def apply_thread_policy() -> int:
    """1 torch thread while a training run is active (do not starve it), else the default. Returns the count."""
    import torch

    global _DEFAULT_THREADS
    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = torch.get_num_threads()
    wanted = 1 if runs.training_active() else _DEFAULT_THREADS
    if os.environ.get("STUDIO_COMPARE_THREADS"):
        wanted = int(os.environ["STUDIO_COMPARE_THREADS"])
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)
    return wanted


def explain_generation_error(error: Exception) -> StudioError:
    text = str(error).lower()
    if (
        isinstance(error, MemoryError)
        or "out of memory" in text
        or "can't allocate" in text
        or "not enough memory" in text
    ):
        return StudioError(
            "The model ran out of memory while generating.",
            "Lower 'max new tokens', clear the chat history, or stop a training run that uses the memory.",
        )
    return StudioError(f"Generation failed: {error}", "Try again with a shorter prompt; details are in the server log.")


def generation_device() -> tuple[str, str]:
    """(torch device, dtype name) Compare generates on: the GPU when there is one, in its half precision
    (studio.models.precision); else the CPU in fp32. On ZeroGPU the GPU exists only inside each @spaces.GPU call
    (every Compare handler runs in one) and is an H200/A100-class card: bf16."""
    import torch

    if torch.cuda.is_available():
        gpu = precision.Device("cuda", capability=tuple(torch.cuda.get_device_capability(0)))
        return "cuda", precision.LOAD_DTYPE[precision.inference_dtype(gpu)]
    if mode.on_zero_gpu():
        return "cuda", precision.LOAD_DTYPE["bf16"]
    return "cpu", precision.LOAD_DTYPE["fp32"]


class Engine:
    """The base model (once) plus the adapters loaded on it."""

    def __init__(self, base_ref: str, progress=None):
        self.base_ref = base_ref
        self.source = catalog.resolve(base_ref, progress)
        self.tokenizer = loading.load_tokenizer(base_ref)
        self.device, self.dtype = generation_device()
        model = loading.load_causal_lm(base_ref, dtype=self.dtype, device=self.device)
        model.eval()
        self.base = model
        self.model = None  # the PeftModel, once the first adapter is attached
        self.adapters: dict[str, str] = {}  # adapter name → folder it came from (with its mtime)
        self.whole_models: dict = {}  # name → a full fine-tune's model (also listed in self.adapters)
        self.lock = threading.RLock()  # one forward pass at a time: adapter switching is model-wide
        self.adapters_on: bool | None = None  # the PeftModel's adapter layers: on, off (base column), None unknown
        # Only the last position's logits when generating: the prompt's other positions would each score the whole
        # vocabulary for nothing (for SmolLM2, 13 prompts of 60 tokens: 44 GFLOPs per batch, ~1 s on a CPU).
        forward_parameters = inspect.signature(model.forward).parameters
        self.last_logits_only = {"logits_to_keep": 1} if "logits_to_keep" in forward_parameters else {}
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 0) or 0) or 4096
        self.stop_ids = self._stop_ids()

    def default_settings(self, **overrides) -> Settings:
        """The fair decoding defaults for this model (its generation_config's sampling values if it has any)."""
        return default_settings(getattr(self.base, "generation_config", None), **overrides)

    def _stop_ids(self) -> set[int]:
        ids = set()
        tok = self.tokenizer
        if tok.eos_token_id is not None:
            ids.add(int(tok.eos_token_id))
        gen_eos = getattr(self.base.generation_config, "eos_token_id", None)
        for value in gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos]:
            if value is not None:
                ids.add(int(value))
        for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
            token_id = tok.convert_tokens_to_ids(token) if token in tok.get_vocab() else None
            if token_id is not None:
                ids.add(int(token_id))
        return ids

    # ---- adapters ----

    def attach(self, adapter_dir: str | Path) -> str:
        """Load an adapter folder on the shared base (once), or a full fine-tune's whole model beside it; returns
        the name the columns use."""
        adapter_dir = Path(adapter_dir).resolve()
        whole = store.is_whole_model(adapter_dir)
        if not whole and not runs.is_adapter_dir(adapter_dir):
            raise StudioError(
                f"No adapter found in {adapter_dir}.",
                "Pick a run that completed or was stopped gracefully (it has an adapter/ folder).",
            )
        name = _adapter_name(adapter_dir)
        weights = sorted(adapter_dir.glob("model*.safetensors" if whole else "adapter_model.*"))[0]
        key = f"{adapter_dir}@{weights.stat().st_mtime_ns}"
        with self.lock:
            if self.adapters.get(name) == key:
                return name
            if name in self.adapters:  # the run was resumed and saved a newer adapter
                self._drop(name)
            try:
                if whole:
                    for other in list(self.whole_models)[: max(0, len(self.whole_models) - MAX_WHOLE_MODELS + 1)]:
                        self._drop(other)  # memory for one more whole model
                    model = loading.load_causal_lm(str(adapter_dir), dtype=self.dtype, device=self.device)
                    model.eval()
                    self.whole_models[name] = model
                elif self.model is None:
                    from peft import PeftModel

                    self.model = PeftModel.from_pretrained(
                        self.base, str(adapter_dir), adapter_name=name, is_trainable=False
                    )
                else:
                    self.model.load_adapter(str(adapter_dir), adapter_name=name, is_trainable=False)
            except Exception as error:  # noqa: BLE001 - becomes a plain message
                raise self._explain_adapter_error(adapter_dir, error) from error
            if self.model is not None:
                self.model.eval()
            self.adapters_on = None  # new adapter layers come enabled: set the mode again before the next pass
            self.adapters[name] = key
            return name

    def _drop(self, name: str) -> None:
        if name in self.whole_models:
            del self.whole_models[name]
        else:
            self.model.delete_adapter(name)
            self.adapters_on = None
        self.adapters.pop(name, None)

    def _explain_adapter_error(self, adapter_dir: Path, error: Exception) -> StudioError:
        text = str(error)
        if (
            "size mismatch" in text
            or "Target modules" in text
            or "not found in the base model" in text
            or "shape" in text
        ):
            declared = (runs.read_json(adapter_dir / "adapter_config.json", {}) or {}).get(
                "base_model_name_or_path", "?"
            )
            return StudioError(
                f"The adapter in {adapter_dir} was trained for another base model ({declared}), not {self.base_ref}.",
                "Compare runs that share a base model, or open this adapter on its own so its base model is loaded.",
            )
        if isinstance(error, MemoryError) or "out of memory" in text.lower():
            return StudioError("Not enough memory to load the adapter.", "Close other runs or pick a smaller model.")
        return StudioError(
            f"Could not load the adapter in {adapter_dir}: {error}",
            "Check that the folder holds adapter_config.json and adapter_model.safetensors.",
        )

    def trim(self, in_use: list[str], max_adapters: int = MAX_ADAPTERS) -> None:
        """Drop the oldest adapters nobody asked for last, so switching runs back and forth stays instant
        while memory stays bounded. The base is never reloaded."""
        with self.lock:
            for name in list(self.adapters):  # insertion order = load order
                if len(self.adapters) <= max_adapters:
                    break
                if name not in in_use:
                    self._drop(name)

    @contextlib.contextmanager
    def using(self, adapter: str | None):
        """Run the model with one adapter active, or with adapters off for the base column."""
        with self.lock:
            if adapter in self.whole_models:
                yield self.whole_models[adapter]
            elif self.model is None:
                yield self.base
            else:
                self._switch(adapter)
                yield self.model

    def _switch(self, adapter: str | None) -> None:
        """Turn the adapter layers off (BASE) or on with `adapter` active, only when that changes. PEFT's
        disable_adapter() context checks every module's status on entry and switches twice: ~70 ms per pass
        for a 30-layer model, which, paid per generated token, was a quarter of an evaluation's time."""
        if adapter is BASE:
            if self.adapters_on is not False:
                self.model.base_model.disable_adapter_layers()
                self.adapters_on = False
            return
        if self.adapters_on is not True:
            self.model.base_model.enable_adapter_layers()
            self.adapters_on = True
        if self.model.active_adapter != adapter:
            self.model.set_adapter(adapter, inference_mode=True)

    # ---- text ----

    def check_size(self, messages: list[dict], system_prompt: str = "") -> None:
        """Refuse a conversation that cannot fit before tokenizing it: tokenizing 20 MB of text costs a minute
        and gigabytes, whoever sends it (every handler is an HTTP endpoint). Characters bound tokens loosely
        (English averages about 4 a token), so this only stops what could never fit."""
        if len(messages) > MAX_MESSAGES:
            raise StudioError(
                f"The conversation has {len(messages):,} messages, more than the {MAX_MESSAGES} this studio answers.",
                "Press Clear to start a new conversation.",
            )
        characters = len(system_prompt or "") + sum(len(runs.flatten_content(m.get("content"))) for m in messages)
        allowed = self.max_positions * CHARACTERS_PER_POSITION
        if characters > allowed:
            raise StudioError(
                f"The conversation is too long for this model ({characters:,} characters; it reads at most "
                f"{self.max_positions:,} tokens, about {allowed:,} characters at most).",
                "Shorten the message or the system prompt, or press Clear to start a new conversation.",
            )

    def prompt_ids(self, messages: list[dict], system_prompt: str = "") -> list[int]:
        self.check_size(messages, system_prompt)
        messages = [{"role": m["role"], "content": runs.flatten_content(m.get("content"))} for m in messages]
        if system_prompt.strip() and not (messages and messages[0]["role"] == "system"):
            messages = [{"role": "system", "content": system_prompt.strip()}] + messages
        try:
            messages = prepare_messages(
                self.tokenizer, messages
            )  # a template without a system role: folded, as in training
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except Exception as error:  # noqa: BLE001 - tokenizers without a chat template
            if "chat_template" not in str(error) and "chat template" not in str(error):
                raise
            text = "\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\nassistant: "
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # ---- generation ----

    def start_column(self, label: str, adapter: str | None, messages: list[dict], settings: Settings) -> ColumnState:
        import torch

        check_settings(settings)
        ids = self.prompt_ids(messages, settings.system_prompt)
        if len(ids) + settings.max_new_tokens > self.max_positions:
            raise StudioError(
                f"The conversation is too long for this model ({len(ids)} tokens of {self.max_positions}).",
                "Press Clear to start a new conversation, or lower 'max new tokens'.",
            )
        generator = torch.Generator().manual_seed(int(settings.seed))
        return ColumnState(
            label=label,
            adapter=adapter,
            prompt_ids=ids,
            next_input=list(ids),
            generator=generator,
            started=time.perf_counter(),
        )

    def step(self, column: ColumnState, settings: Settings) -> None:
        """Generate one token for one column."""
        import torch

        if column.done:
            return
        began = time.perf_counter()
        try:
            with torch.inference_mode(), self.using(column.adapter) as model:
                out = model(
                    input_ids=torch.tensor([column.next_input], device=self.device),
                    past_key_values=column.cache,
                    use_cache=True,
                    **self.last_logits_only,
                )
        except StudioError:
            raise
        except (RuntimeError, MemoryError) as error:
            raise explain_generation_error(error) from error
        column.cache = out.past_key_values
        token = pick_token(out.logits[0, -1], settings, column.generator, column.generated)
        column.compute_s += time.perf_counter() - began
        if column.first_token_s is None:
            column.first_token_s = time.perf_counter() - column.started
        if token in self.stop_ids:
            column.done, column.finish_reason = True, "eos"
            return
        column.generated.append(token)
        column.next_input = [token]
        column.text = self._decode(column.generated)
        if len(column.generated) >= settings.max_new_tokens:
            column.done, column.finish_reason = True, "length"

    def stream(self, jobs: list[tuple[str, str | None, list[dict]]], settings: Settings, should_stop=None):
        """Interleave the columns token by token; yields the list of ColumnState after each round.

        jobs: (label, adapter name or BASE, chat messages ending with the user turn) per column.
        """
        apply_thread_policy()
        columns = [self.start_column(label, adapter, messages, settings) for label, adapter, messages in jobs]
        yield columns
        while not all(column.done for column in columns):
            if should_stop is not None and should_stop():
                for column in columns:
                    if not column.done:
                        column.done, column.finish_reason = True, "stopped"
                break
            for column in columns:
                self.step(column, settings)
            yield columns
        for column in columns:
            column.cache = None  # free the KV caches

    def generate_batch(self, adapter: str | None, conversations: list[list[dict]], settings: Settings) -> list[str]:
        """Answers for several conversations at once: one forward pass per token for the whole batch.

        On a CPU a small model's step costs mostly per-call overhead, so a batch of 8 takes about as long
        as one answer. Prompts are left-padded and the padding masked out, and each row has its own
        seeded generator, so the tokens are those stream() picks for the same prompt and settings.
        """
        import torch

        check_settings(settings)
        apply_thread_policy()
        prompts = [self.prompt_ids(messages, settings.system_prompt) for messages in conversations]
        if not prompts:
            return []
        longest = max(len(ids) for ids in prompts)
        if longest + settings.max_new_tokens > self.max_positions:
            raise StudioError(
                f"A prompt is too long for this model ({longest} tokens of {self.max_positions}).",
                "Use shorter prompts, or lower 'max new tokens'.",
            )
        pad = self.tokenizer.pad_token_id
        pad = int(pad) if pad is not None else min(self.stop_ids, default=0)
        count = len(prompts)
        input_ids = torch.tensor([[pad] * (longest - len(ids)) + ids for ids in prompts], device=self.device)
        mask = torch.tensor([[0] * (longest - len(ids)) + [1] * len(ids) for ids in prompts], device=self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        generators = [torch.Generator().manual_seed(int(settings.seed)) for _ in prompts]
        generated: list[list[int]] = [[] for _ in prompts]
        done = [False] * count
        cache = None
        try:
            with torch.inference_mode():
                for _ in range(settings.max_new_tokens):
                    # The lock (and the adapter choice) per token, not per batch: a chat in another
                    # browser gets its turns while a long evaluation runs.
                    with self.using(adapter) as model:
                        out = model(
                            input_ids=input_ids,
                            attention_mask=mask,
                            position_ids=positions,
                            past_key_values=cache,
                            use_cache=True,
                            **self.last_logits_only,
                        )
                    cache = out.past_key_values
                    next_tokens = []
                    for row in range(count):
                        token = pad
                        if not done[row]:
                            token = pick_token(out.logits[row, -1], settings, generators[row], generated[row])
                            if token in self.stop_ids:
                                done[row] = True
                            else:
                                generated[row].append(token)
                        next_tokens.append(token)
                    if all(done):
                        break
                    input_ids = torch.tensor([[token] for token in next_tokens], device=self.device)
                    mask = torch.cat([mask, torch.ones((count, 1), dtype=mask.dtype, device=self.device)], dim=1)
                    positions = positions[:, -1:] + 1
        except StudioError:
            raise
        except (RuntimeError, MemoryError) as error:
            raise explain_generation_error(error) from error
        return [self._decode(ids) for ids in generated]

    def generate(self, adapter: str | None, messages: list[dict], settings: Settings) -> str:
        result = None
        for result in self.stream([("answer", adapter, messages)], settings):  # noqa: B007 - keeps the last item
            pass
        return result[0].text

    def reference_loss(
        self, adapter: str | None, messages: list[dict], reference: str, system_prompt: str = ""
    ) -> float:
        """Teacher-forced mean cross-entropy of the reference answer (plus end of turn) after the prompt."""
        import torch

        prompt = self.prompt_ids(messages, system_prompt)
        answer = self.tokenizer(reference, add_special_tokens=False)["input_ids"]
        end = (
            self.tokenizer.convert_tokens_to_ids("<|im_end|>")
            if "<|im_end|>" in self.tokenizer.get_vocab()
            else self.tokenizer.eos_token_id
        )
        if end is not None:
            answer = answer + [int(end)]
        ids = (prompt + answer)[-self.max_positions :]
        n_answer = min(len(answer), len(ids) - 1)
        labels = [-100] * (len(ids) - n_answer) + ids[len(ids) - n_answer :]
        apply_thread_policy()
        with torch.inference_mode(), self.using(adapter) as model:
            out = model(
                input_ids=torch.tensor([ids], device=self.device), labels=torch.tensor([labels], device=self.device)
            )
        return float(out.loss)


def pick_token(logits, settings: Settings, generator, answer: list[int] | None = None) -> int:
    """The next token: the repetition guard over the answer so far, then greedy at temperature 0, else
    temperature + top-k + nucleus (top_p) sampling from a seeded generator.

    The guard looks at the answer only, not the prompt (Hugging Face's penalty also covers the prompt): it is
    there to stop an answer repeating itself, and must not push a model away from the question's words or,
    in a chat, from the style of its own earlier turns."""
    import torch

    # On the CPU, whatever device generated them: the seeded CPU generator picks the same tokens everywhere.
    logits = guard_repetition(logits.float().cpu(), settings, answer or [])
    if settings.temperature <= 0:
        return int(torch.argmax(logits))
    if settings.top_k and 0 < settings.top_k < logits.shape[-1]:
        kth = torch.topk(logits, int(settings.top_k)).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits / settings.temperature, dim=-1)
    if 0 < settings.top_p < 1:
        sorted_probs, order = _most_likely_first(probs, settings.top_p)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        keep = cumulative - sorted_probs < settings.top_p  # always keeps the top token
        sorted_probs = sorted_probs * keep
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[choice])
    return int(torch.multinomial(probs, 1, generator=generator))


def _most_likely_first(probs, top_p: float):
    """The tokens in order of probability, enough of them to hold `top_p` of it: the nucleus is read from these.

    A partial sort of the NUCLEUS_HEAD most likely tokens first, the whole vocabulary only when they hold less than
    top_p. The nucleus and its order are those of a full sort either way; what changes is the cost: sorting a
    49k vocabulary for every token of every answer, and sampling over all of it (torch draws one random number
    per entry), took 4 s of a 22 s evaluation batch."""
    import torch

    if probs.shape[-1] > NUCLEUS_HEAD:
        head, order = torch.topk(probs, NUCLEUS_HEAD)
        if float(torch.cumsum(head, dim=-1)[-1]) >= top_p:
            return head, order
    return torch.sort(probs, descending=True)


def guard_repetition(logits, settings: Settings, context: list[int]):
    """The repetition penalty as Hugging Face defines it (tokens already in `context`: positive logits divided,
    negative multiplied by the penalty) and the no-repeat n-gram ban, applied to one row of logits."""
    import torch

    if not context:
        return logits
    penalty = float(settings.repetition_penalty or 1.0)
    if penalty != 1.0:
        seen = torch.tensor(sorted(set(context)), dtype=torch.long)
        values = logits[seen]
        logits = logits.clone()
        logits[seen] = torch.where(values > 0, values / penalty, values * penalty)
    size = int(settings.no_repeat_ngram_size or 0)
    if size > 0 and len(context) >= size:
        prefix = tuple(context[len(context) - size + 1 :]) if size > 1 else ()
        banned = {
            context[i + size - 1] for i in range(len(context) - size + 1) if tuple(context[i : i + size - 1]) == prefix
        }
        if banned:
            logits = logits.clone() if penalty == 1.0 else logits
            logits[torch.tensor(sorted(banned), dtype=torch.long)] = float("-inf")
    return logits


def get_engine(base_ref: str, progress=None) -> Engine:
    """The engine for a base model, loaded once. Only one base is kept in memory at a time."""
    key = catalog.resolve(base_ref, progress)
    key = str(Path(key).resolve()) if Path(key).exists() else key
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            _ENGINES.clear()  # a new base replaces the old one: never two models in memory
            engine = Engine(base_ref, progress)
            _ENGINES[key] = engine
        return engine


def cached_engines() -> dict[str, Engine]:
    return dict(_ENGINES)


@dataclass
class Session:
    """What a Compare view needs: the engine and the adapter names of run A (tuned) and optional run B."""

    engine: Engine
    run: runs.RunInfo
    tuned: str
    run_b: runs.RunInfo | None = None
    tuned_b: str | None = None


def open_session(run_id_or_dir, run_b_id_or_dir=None, progress=None) -> Session:
    run = runs.load_run(run_id_or_dir)
    run_b = runs.load_run(run_b_id_or_dir) if run_b_id_or_dir else None
    if run_b is not None and not _same_base(run.base_ref, run_b.base_ref):
        raise StudioError(
            f"Run B ('{run_b.name}') was trained on {run_b.base_ref}, run A on {run.base_ref}.",
            "A third column needs a run on the same base model; pick another run B or leave it empty.",
        )
    engine = get_engine(run.base_ref, progress)
    tuned = engine.attach(run.adapter_dir)
    tuned_b = engine.attach(run_b.adapter_dir) if run_b is not None else None
    engine.trim([name for name in (tuned, tuned_b) if name])
    return Session(engine=engine, run=run, tuned=tuned, run_b=run_b, tuned_b=tuned_b)


def _same_base(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return Path(catalog.resolve(a)).resolve() == Path(catalog.resolve(b)).resolve()
    except StudioError:
        return False


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50.0))
