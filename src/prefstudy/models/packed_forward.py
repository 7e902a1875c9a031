"""Packed rows, for the prefix-shared training forward and for scoring passes: each preference pair runs as ONE
packed row ``[prompt, chosen, rejected]``.

A 4D attention mask hides the chosen tokens from the rejected ones (both see the prompt), and the rejected
answer's position ids restart where the prompt ends, so every token sees exactly what it would see in TRL's two
separate sequences ``[prompt, chosen]`` and ``[prompt, rejected]``: equal log-probs up to float rounding, at
``P + C + R`` tokens a pair instead of ``2P + C + R``. The tokens both answers start with (a restated question:
"98 + 485 = " before "583." and "483.") run once too, as part of the prompt both branches see; their log-probs
are computed once and handed to both answers. The LM head is applied only at the positions that predict an
answer token, once per distinct position. The per-token log-probs come back in TRL's own layout (rows
``[chosen..., rejected...]``, shifted positions, 0 outside the completion), so TRL's loss code reads them unchanged
(``training.trl_seams``); scoring passes (``evaluation.logprobs``) read them in an answer-aligned layout.

Rows: one pair per row, right-padded (``pairs_per_row=1``), or several pairs per row with block-diagonal masks.
Padding tokens attend only to themselves (a fully masked query row would give NaN in the softmax).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from prefstudy.models.transformers_seams import attention_implementation

#: attention implementations that take an arbitrary 4D mask: sdpa (boolean mask) and eager (additive float mask)
MASK_ATTENTION = ("sdpa", "eager")
#: segment ids of tokens that belong to no pair: padding, and a row's shared prefix
PAD, SHARED = -1, -2


def backbone_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The decoder stack and LM head of a causal LM (LoRA layers, injected in place by peft, stay active)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder(), base.get_output_embeddings()


def common_prefix(sequences: Sequence[Sequence[int]]) -> int:
    """Length of the longest prefix shared by every sequence, leaving each at least one token of its own."""
    if not sequences:
        return 0
    limit = min(len(s) for s in sequences) - 1
    first = sequences[0]
    length = 0
    while length < limit and all(s[length] == first[length] for s in sequences):
        length += 1
    return length


def attention_takes_mask(model: torch.nn.Module) -> bool:
    """Whether ``model``'s attention accepts a custom 4D mask (the condition for ``prefix_sharing: auto``)."""
    config = getattr(model, "config", None)
    implementation = (attention_implementation(config) if config is not None else None) or "eager"
    return implementation in MASK_ATTENTION and not getattr(config, "output_router_logits", False)


def resolve_prefix_sharing(setting: str, model: torch.nn.Module) -> bool:
    """``training.prefix_sharing`` for this model: auto = on where the attention takes a 4D mask; on = required."""
    if setting == "off":
        return False
    if attention_takes_mask(model):
        return True
    if setting == "on":
        from prefstudy.spec import SpecError

        implementation = attention_implementation(model)
        raise SpecError(f"training.prefix_sharing: on needs attention that takes a 4D mask ({', '.join(MASK_ATTENTION)}"
                        f"), not '{implementation}' on a non-MoE model; use auto or off")
    return False


def trl_width(prompts: Sequence[Sequence[int]], chosen: Sequence[Sequence[int]],
              rejected: Sequence[Sequence[int]]) -> int:
    """The padded width of TRL's own batch: the longest ``prompt + answer`` over chosen and rejected."""
    return max(len(p) + max(len(c), len(r)) for p, c, r in zip(prompts, chosen, rejected, strict=True))


def answer_width(chosen: Sequence[Sequence[int]], rejected: Sequence[Sequence[int]]) -> int:
    """A: the longest answer, the width of the ``answer_layout`` [2B, A]."""
    return max(max(len(c), len(r)) for c, r in zip(chosen, rejected, strict=True))


def pack_pairs(prompts: Sequence[Sequence[int]], chosen: Sequence[Sequence[int]], rejected: Sequence[Sequence[int]],
               pad_token_id: int, row_tokens: int = 0, sliding_window: int | None = None,
               answer_layout: bool = False) -> dict[str, torch.Tensor]:
    """The packed batch for ``len(prompts)`` pairs, with the maps back to TRL's layout.

    Returns ``packed_input_ids``/``packed_position_ids`` [R, W], ``packed_attention_mask`` [R, 1, W, W] (True =
    may attend), ``packed_source`` (flat index into R*W of the hidden state that predicts each scored answer
    token), ``packed_labels`` (that token), ``packed_target`` (flat index of every answer token in TRL's shifted
    [2B, L-1] layout; with ``answer_layout``, in [2B, A]: row i chosen of pair i, row B+i its rejected, column j
    the answer's token j, A the longest answer) and ``packed_pick`` (which scored token fills each target: a token
    both answers start with is scored once and fills two).
    ``row_tokens=0`` gives each pair its own row; otherwise consecutive pairs share a row while their tokens fit in
    ``row_tokens`` (a longer pair gets a row of its own), and a row of several pairs holds the prefix their prompts
    share (system prompt, chat header) once, visible to all of them.
    """
    batch = len(prompts)
    width_trl = trl_width(prompts, chosen, rejected)
    width_answers = answer_width(chosen, rejected)
    groups = _rows(
        [len(p) + len(c) + len(r) for p, c, r in zip(prompts, chosen, rejected, strict=True)], row_tokens)
    shared = [common_prefix([prompts[i] for i in group]) if len(group) > 1 else 0 for group in groups]
    stems = [common_prefix([c, r]) for c, r in zip(chosen, rejected, strict=True)]
    lengths = [c + sum(len(prompts[i]) - c + len(chosen[i]) + len(rejected[i]) - stems[i] for i in group)
               for c, group in zip(shared, groups, strict=True)]
    width = max(lengths)
    rows = len(groups)
    ids = torch.full((rows, width), pad_token_id, dtype=torch.long)
    positions = torch.zeros((rows, width), dtype=torch.long)
    segment = torch.full((rows, width), PAD, dtype=torch.long)  # which pair a token belongs to
    branch = torch.zeros((rows, width), dtype=torch.long)  # 0 prompt and shared answer start, 1 chosen, 2 rejected
    source: list[int] = []
    labels: list[int] = []
    target: list[int] = []
    pick: list[int] = []
    for row, (group, c) in enumerate(zip(groups, shared, strict=True)):
        if c:
            ids[row, :c] = torch.tensor(list(prompts[group[0]][:c]), dtype=torch.long)
            positions[row, :c] = torch.arange(c)
            segment[row, :c] = SHARED
        offset = c
        for i in group:
            prompt, good, bad, k = list(prompts[i]), list(chosen[i]), list(rejected[i]), stems[i]
            n_p, n_c, n_r = len(prompt), len(good), len(bad)
            end = offset + n_p - c + n_c + n_r - k
            # [prompt suffix, stem = the answers' common start, chosen tail, rejected tail]
            ids[row, offset:end] = torch.tensor(prompt[c:] + good + bad[k:], dtype=torch.long)
            positions[row, offset:end] = torch.tensor(
                list(range(c, n_p + n_c)) + list(range(n_p + k, n_p + n_r)), dtype=torch.long)
            segment[row, offset:end] = i
            answers = offset + n_p - c  # the first answer token (the stem's, or the chosen one's without a stem)
            branch[row, answers + k:answers + n_c] = 1
            branch[row, answers + n_c:end] = 2
            base = row * width
            good_at = [answers + j for j in range(n_c)]
            bad_at = good_at[:k] + [answers + n_c + j for j in range(n_r - k)]
            scored: dict[tuple[int, int], int] = {}  # (flat source, token) -> index of its scored token
            for layout_row, answer, at in ((i, good, good_at), (batch + i, bad, bad_at)):
                for j, token in enumerate(answer):
                    flat = base + (answers - 1 if j == 0 else at[j - 1])
                    if (flat, token) not in scored:
                        scored[flat, token] = len(source)
                        source.append(flat)
                        labels.append(token)
                    pick.append(scored[flat, token])
                    target.append(layout_row * width_answers + j if answer_layout
                                  else layout_row * (width_trl - 1) + n_p + j - 1)
            offset = end
    mask = _block_mask(segment, branch, positions, sliding_window)
    return {
        "packed_input_ids": ids, "packed_position_ids": positions, "packed_attention_mask": mask,
        "packed_source": torch.tensor(source, dtype=torch.long),
        "packed_target": torch.tensor(target, dtype=torch.long),
        "packed_labels": torch.tensor(labels, dtype=torch.long),
        "packed_pick": torch.tensor(pick, dtype=torch.long),
    }


def _rows(sizes: list[int], row_tokens: int) -> list[list[int]]:
    """Consecutive pairs grouped into rows of at most ``row_tokens`` tokens (counted without prefix sharing)."""
    groups: list[list[int]] = []
    used = 0
    for i, size in enumerate(sizes):
        if groups and row_tokens and used + size <= row_tokens:
            groups[-1].append(i)
            used += size
        else:
            groups.append([i])
            used = size
    return groups


def _block_mask(segment: torch.Tensor, branch: torch.Tensor, positions: torch.Tensor,
                sliding_window: int | None) -> torch.Tensor:
    """[R, 1, W, W] boolean: query q may see key k when k is not after q and either k is the row's shared prefix,
    or both are of one pair and k is its prompt or on q's own branch (and, when the model has a sliding window,
    within it, measured in positions)."""
    width = segment.shape[1]
    index = torch.arange(width)
    causal = index[None, :, None] >= index[None, None, :]
    query, key = segment[:, :, None], segment[:, None, :]
    same_pair = (query == key) & (query >= 0)
    visible_branch = (branch[:, None, :] == 0) | (branch[:, :, None] == branch[:, None, :])
    allowed = causal & ((same_pair & visible_branch) | ((key == SHARED) & (query != PAD)))
    if sliding_window is not None:
        allowed &= (positions[:, :, None] - positions[:, None, :]) < sliding_window
    allowed |= torch.eye(width, dtype=torch.bool)[None]  # padding sees itself only (no empty softmax rows)
    return allowed[:, None]


def _mask_for(model: torch.nn.Module, mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    implementation = attention_implementation(model.config) or "eager"
    if implementation == "sdpa":
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)


def packed_forward(model: Any, inputs: dict[str, torch.Tensor], layout_shape: tuple[int, int],
                   fields: bool = True) -> dict[str, torch.Tensor]:
    """Run the packed rows; return per-token ``log_probs`` (with grad) and, with ``fields``, TRL's logged fields
    (detached: ``entropy``, ``mean_logits``, ``is_top1``), each of ``layout_shape``, 0 outside the answers."""
    backbone, head = backbone_and_head(model)
    device = head.weight.device
    ids = inputs["packed_input_ids"].to(device)
    dtype = next(p for p in backbone.parameters() if p.is_floating_point()).dtype
    hidden = backbone(
        input_ids=ids, position_ids=inputs["packed_position_ids"].to(device),
        attention_mask=_mask_for(backbone, inputs["packed_attention_mask"].to(device), dtype), use_cache=False,
    ).last_hidden_state
    rows = hidden.reshape(-1, hidden.shape[-1])[inputs["packed_source"].to(device)]
    logits = head(rows).float()
    labels = inputs["packed_labels"].to(device)
    log_norm = torch.logsumexp(logits, dim=-1)
    picked = logits.gather(-1, labels[:, None]).squeeze(-1) - log_norm
    target, pick = inputs["packed_target"].to(device), inputs["packed_pick"].to(device)
    size = layout_shape[0] * layout_shape[1]
    log_probs = picked.new_zeros(size).index_put((target,), picked[pick]).view(layout_shape)
    if not fields:
        return {"log_probs": log_probs}
    with torch.no_grad():
        log_p = logits - log_norm[:, None]
        values = {
            "entropy": -(log_p.exp() * log_p).sum(-1),
            "mean_logits": logits.mean(-1),
            "is_top1": (logits.argmax(-1) == labels),
        }
        out = {name: torch.zeros(size, dtype=value.dtype, device=device).index_put((target,), value[pick]).view(
            layout_shape) for name, value in values.items()}
    return {"log_probs": log_probs, **out}


def sliding_window_of(model: Any) -> int | None:
    """The model's attention window in positions, where it has one in use (Mistral v0.1), else None."""
    config = model.config
    window = getattr(config, "sliding_window", None) if getattr(config, "use_sliding_window", True) else None
    return window if isinstance(window, int) else None


def packed_answer_logps(model: Any, prompts: list[list[int]], chosen: list[list[int]], rejected: list[list[int]],
                        pad_token_id: int, row_tokens: int,
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token log-probs of chosen and rejected answers from packed rows (a scoring pass: call under no_grad).

    Several pairs share a row of up to ``row_tokens`` tokens, so there is no padding but at the rows' ends, and
    every shared piece runs once: the row's common prefix, each prompt, each pair's common answer start. Equal to
    the full-sequence computation up to float rounding (tested). Returns (chosen [B, A], chosen mask, rejected
    [B, A], rejected mask), A the longest answer.
    """
    batch = len(prompts)
    packed = pack_pairs(prompts, chosen, rejected, pad_token_id, row_tokens, sliding_window_of(model),
                        answer_layout=True)
    width = answer_width(chosen, rejected)
    per_token = packed_forward(model, packed, (2 * batch, width), fields=False)["log_probs"]
    lengths = torch.tensor([len(a) for a in list(chosen) + list(rejected)], device=per_token.device)
    mask = (torch.arange(width, device=per_token.device)[None, :] < lengths[:, None]).long()
    return per_token[:batch], mask[:batch], per_token[batch:], mask[batch:]
