"""`BlockPruner`: prepare(model) -> penalty()/refresh_alpha() -> prune(density) -> keep masks.

Reads like a torch.ao sparsifier, and like torch.ao its state lives in module buffers: per group
set `alpha_<i>` and `keep_<i>` and, rebuilt from the keep flags rather than saved, one `mask_<j>`
per masked parameter; the density of the last prune is saved beside them as plain data. Register
the pruner as a submodule of the module that holds the model (the LightningModule does): then
`.to(device)` moves it, the checkpoint's `state_dict` saves it, and DDP broadcasts it, together
with the weights.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from blockprune_pl.errors import ConfigError
from blockprune_pl.pruning.allocation import final_densities
from blockprune_pl.pruning.groups import BlockGroups, CoupledGroups, Member
from blockprune_pl.pruning.lasso import group_lasso, reweighted_alpha, shrink_factors
from blockprune_pl.pruning.layouts import (
    HEAD_ROLES,
    NEURON_ROLES,
    PrunableLinear,
    find_prunable,
    layout_for,
    row_parts,
)
from blockprune_pl.pruning.masks import (
    group_scores,
    keep_top,
    keep_top_per_column,
    keep_top_per_section,
)
from blockprune_pl.pruning.refit import refit_rows
from blockprune_pl.pruning.spec import PruneSpec

# per optimizer step, the weight of the history in the Fisher average: about the last 100 steps
FISHER_DECAY = 0.99


class BlockPruner(nn.Module):
    def __init__(self, spec: PruneSpec):
        super().__init__()
        self.spec = spec
        self.groups: list[BlockGroups | CoupledGroups] = []
        self.pruned_energy: dict | None = None  # what the last prune() removed
        # 1.0 until the first prune(); a Python float, read at every step without a device sync
        self.density = 1.0
        self._masked: dict[str, nn.Parameter] = {}  # parameter name -> parameter, mask_<j> order
        # masks are derived state: rebuilt from the keep flags whenever those are loaded
        self.register_load_state_dict_post_hook(lambda module, _: module._build_masks())

    # ----------------------------------------------------------------- setup
    def prepare(self, model: nn.Module) -> BlockPruner:
        """Find the prunable Linears of `model` (a HF model) and cut them into groups."""
        config = model.config
        self.prunables = find_prunable(model, layout_for(model), self.spec.roles)
        self._row_parts = row_parts(self.prunables)
        if self.spec.geometry == "neurons":
            self.groups = _coupled_groups(
                self.prunables, config.num_attention_heads, self._row_parts, self.spec.geometry
            )
        elif self.spec.geometry == "hybrid":
            # attention matrices in row segments, the FFN in whole neurons (Block Pruning's
            # hybrid): an FFN neuron's input row and output column go together
            attention = [p for p in self.prunables if not p.in_ffn]
            ffn = [p for p in self.prunables if p.in_ffn]
            self.groups = [self._block_groups(p) for p in attention] + _coupled_groups(
                ffn, config.num_attention_heads, self._row_parts, self.spec.geometry
            )
        elif self.spec.geometry == "heads_bsp":
            # the mirror of hybrid: whole heads in the attention (a cut head leaves no stray
            # q.k terms or v rows behind), row segments in the FFN
            attention = [p for p in self.prunables if not p.in_ffn]
            ffn = [p for p in self.prunables if p.in_ffn]
            self.groups = _coupled_groups(
                attention, config.num_attention_heads, self._row_parts, self.spec.geometry
            ) + [self._block_groups(p) for p in ffn]
        else:
            self.groups = [self._block_groups(p) for p in self.prunables]
        if self.spec.qk != "same":
            self.groups = _qk_coupled_instead(
                self.groups, self.prunables, config.num_attention_heads, self.spec.qk
            )
        self._final_densities = final_densities(self.spec, self.groups)
        for i, g in enumerate(self.groups):
            self.register_buffer(f"alpha_{i}", torch.ones(len(g), device=_device(g)))
            self.register_buffer(
                f"keep_{i}", torch.ones(len(g), dtype=torch.bool, device=_device(g))
            )
            for name, param in g.params.items():
                if name in self._masked:
                    raise ValueError(f"{name} belongs to two group sets")
                self._masked[name] = param
                mask = torch.ones_like(param, dtype=torch.bool)
                self.register_buffer(f"mask_{len(self._masked) - 1}", mask, persistent=False)
            if self.spec.score == "fisher":
                self.register_buffer(f"fisher_{i}", torch.zeros(len(g), device=_device(g)))
        if self.spec.score == "fisher":
            self.register_buffer("fisher_steps", torch.zeros((), dtype=torch.long))
        return self

    @property
    def alpha(self) -> list[Tensor]:
        """Per group set, `(G,)` penalty weights (0 for groups the penalty leaves alone)."""
        return [getattr(self, f"alpha_{i}") for i in range(len(self.groups))]

    @property
    def keep(self) -> list[Tensor]:
        """Per group set, `(G,)` bool: the groups kept by the last prune (all before it)."""
        return [getattr(self, f"keep_{i}") for i in range(len(self.groups))]

    @property
    def fisher(self) -> list[Tensor]:
        """Per group set, `(G,)` running average of (sum_g w * dL/dw)^2 (score=fisher)."""
        return [getattr(self, f"fisher_{i}") for i in range(len(self.groups))]

    @property
    def is_pruned(self) -> bool:
        return self.density < 1.0

    def _mask_pairs(self):
        """(parameter, bool mask of its kept weights): what every masking step walks."""
        for j, param in enumerate(self._masked.values()):
            yield param, getattr(self, f"mask_{j}")

    def max_rate(self) -> float:
        """The highest rate a prune can reach: with scope=layer every pool a set ranks on its
        own keeps at least one group (at best its smallest): the matrix or coupled set, each
        column block with `balance`, each head with `qk=dims`; with scope=global the whole
        model keeps at least one group."""
        sizes = [g.sizes() for g in self.groups]
        total = float(sum(int(s.sum()) for s in sizes))
        if self.spec.scope == "global" and not self.spec.min_density:
            least = min(int(s.min()) for s in sizes)
        else:
            least = sum(self._fewest_kept(g) for g in self.groups)
        return total / least

    def _fewest_kept(self, g: BlockGroups | CoupledGroups) -> int:
        """The fewest weights a prune leaves in `g`: the smallest group of each of its pools."""
        sizes = g.sizes()
        if self.spec.balance:
            pools = sizes.reshape(g.grid).T  # keep_top_per_column: one pool per column block
        else:
            pools = sizes.reshape(g.sections, -1)  # keep_top_per_section
        return int(pools.min(dim=1).values.sum())

    def _block_groups(self, p: PrunableLinear) -> BlockGroups:
        out_features, in_features = p.module.weight.shape
        block = self.spec.group_shape(in_features)
        if block[0] > out_features or block[1] > in_features:
            raise ConfigError(
                f"prune.block={list(block)} does not fit {p.name}.weight of shape "
                f"({out_features}, {in_features}): rows must be <= {out_features} and cols <= "
                f"{in_features}"
            )
        parts = self._row_parts.get(p.name, 1)
        if parts > 1 and (out_features // parts) % block[0]:
            raise ConfigError(
                f"prune.block={list(block)}: {p.name} holds {parts} roles as row blocks of "
                f"{out_features // parts} rows ({p.role}); a block of {block[0]} rows would "
                f"straddle two of them. Use a row count that divides {out_features // parts}"
            )
        label = f"{p.name}.weight"
        return BlockGroups(label, p.layer, p.role, label, p.module.weight, block)

    # ---------------------------------------------------------- the penalty
    def norms(self) -> list[Tensor]:
        return [g.norms() for g in self.groups]

    def penalty(self) -> Tensor:
        """lam * sum_g alpha_g ||W_g||: differentiable in the weights, alpha held constant."""
        terms = [group_lasso(g.norms(), a, self.spec.lam) for g, a in zip(self.groups, self.alpha)]
        return torch.stack(terms).sum()

    @torch.no_grad()
    def refresh_alpha(self) -> None:
        """alpha_g = 1 / (||W_g|| + eps) (or 1 without reweighting). `relative`: in units of the
        matrix's median group norm m, alpha_g = m^2 / (||W_g|| + eps * m), so that a threshold
        t shrinks a typical group by about t times its norm. m is the median of the groups not
        yet at zero: once the penalty has emptied half of a matrix's groups, the median of all
        of them is 0 and would stop the penalty on the rest of the doomed ones (rate > 2).
        `target=doomed`: alpha is 0 on the groups the prune to the final density would now
        keep."""
        targeted = self.spec.target == "doomed"
        if targeted and not self.has_scores():
            # no gradient seen yet to rank by: penalise nothing rather than the norm's choice
            for a in self.alpha:
                a.zero_()
            return
        doomed = [~k for k in self.select(self.spec.density)] if targeted else []
        for i, g in enumerate(self.groups):
            norms = g.norms().detach()
            ref = norms.new_tensor(1.0)
            if self.spec.relative:
                alive = norms[norms > 0]
                ref = (alive.median() if alive.numel() else ref).clamp_min(1e-12)
            if self.spec.reweighted:
                alpha = ref * reweighted_alpha(norms / ref, self.spec.eps)
            else:
                alpha = ref * torch.ones_like(norms)
            if targeted:
                alpha = alpha * doomed[i]
            self.alpha[i].copy_(alpha)

    @torch.no_grad()
    def add_penalty_grad(self) -> float:
        """Add d(penalty)/dW into `.grad` (after backward, before the optimizer); returns it."""
        with torch.enable_grad():
            value = self.penalty()
            params = [p for g in self.groups for p in g.params.values()]
            grads = torch.autograd.grad(value, params, allow_unused=True)
        for p, grad in zip(params, grads):
            if grad is None:
                continue
            if p.grad is None:
                p.grad = grad.clone()
            else:
                p.grad.add_(grad)
        return float(value)

    @torch.no_grad()
    def proximal_step(self, threshold: float) -> None:
        """Group soft-threshold with `threshold * alpha_g` (usually lr * lam)."""
        for g, a in zip(self.groups, self.alpha):
            factors = shrink_factors(g.norms(), a, threshold)
            for name, factor in g.expand(factors).items():
                g.params[name].mul_(factor.to(g.params[name].dtype))

    # ------------------------------------------------------------- scores
    @torch.no_grad()
    def accumulate_fisher(self) -> None:
        """After backward: fold each group's (sum_g w * dL/dw)^2, the squared first-order change
        of the loss were the group removed, into a running average (score=fisher)."""
        for g, fisher in zip(self.groups, self.fisher):
            dots = g.grad_dots()
            if dots is not None:
                fisher.mul_(FISHER_DECAY).add_(dots.float().square(), alpha=1 - FISHER_DECAY)
        self.fisher_steps += 1

    def has_scores(self) -> bool:
        """Whether the groups can be ranked: always by norm, by Fisher once a step was seen."""
        return self.spec.score == "norm" or int(self.fisher_steps) > 0

    def scores(self) -> list[Tensor]:
        """Per group set, `(G,)`: what a prune keeps the highest of. norm: the RMS of the weights;
        fisher: the loss a removal costs per weight (a global ranking then spends the kept
        weights where they save the most loss). Ranks by norm until a Fisher step is seen."""
        if self.spec.score == "norm" or int(self.fisher_steps) == 0:
            return [group_scores(g.norms(), g.sizes()) for g in self.groups]
        return [f / g.sizes().to(f.device).float() for g, f in zip(self.groups, self.fisher)]

    # ------------------------------------------------------------- pruning
    def set_densities(self, density: float) -> list[float]:
        """Per group set, its share of a prune to overall `density`: `density` itself, unless
        `role_rates` or `attn_ratio` splits the rate. Then each set moves from 1 to its own final
        density by the same fraction of the way as `density` moves from 1 to the final one, so
        that at every step the kept weights add up to `density`."""
        if not self.spec.splits_rate:
            return [float(density)] * len(self.groups)
        final = self.spec.density
        progress = (1.0 - density) / (1.0 - final) if final < 1.0 else 1.0
        return [1.0 - (1.0 - d) * progress for d in self._final_densities]

    @torch.no_grad()
    def select(self, density: float) -> list[Tensor]:
        """Per group set, the groups a prune to `density` would keep now (per matrix or coupled
        set with scope=layer, one ranking across layers with scope=global (one for the
        attention and one for the FFN with attn_ratio), where every set keeps at least
        `min_density` of its groups). Never brings back a pruned group."""
        scores = self.scores()
        if self.spec.balance:
            return [
                keep_top_per_column(s, g.sizes(), g.grid, d, alive)
                for s, g, alive, d in zip(
                    scores, self.groups, self.keep, self.set_densities(density)
                )
            ]
        if self.spec.scope == "layer":
            return [
                keep_top_per_section(s, g.sizes(), g.sections, d, alive)
                for s, g, alive, d in zip(
                    scores, self.groups, self.keep, self.set_densities(density)
                )
            ]
        if self.spec.min_density > 0:
            scores = [
                floor_first(s, alive, self.spec.min_density) for s, alive in zip(scores, self.keep)
            ]
        # one ranking across layers per density: every set at once, or with attn_ratio the
        # attention's sets and the FFN's, so each side keeps its share of the rate and the
        # layers compete for it
        densities = self.set_densities(density)
        keep: dict[int, Tensor] = {}
        for d in set(densities):
            ids = [i for i, x in enumerate(densities) if x == d]
            kept = keep_top(
                torch.cat([scores[i] for i in ids]),
                torch.cat([self.groups[i].sizes() for i in ids]),
                d,
                torch.cat([self.keep[i] for i in ids]),
            )
            keep.update(zip(ids, torch.split(kept, [len(self.groups[i]) for i in ids])))
        return [keep[i] for i in range(len(self.groups))]

    @torch.no_grad()
    def prune(self, density: float, grams: dict[str, Tensor] | None = None) -> None:
        """Zero the weakest groups so that `density` of the prunable weights stay. Monotone.
        Records the share of the squared norm it removed in `pruned_energy`. `grams`: per
        weight name, X^T X of its Linear's calibration inputs (`calibration_modules`); the kept
        weights of those matrices are then refit to their output before the cut."""
        norms = self.norms()
        keep = self.select(density)
        self.pruned_energy = removed_energy(norms, self.keep, keep, [g.layer for g in self.groups])
        for old, new in zip(self.keep, keep):
            old.copy_(new)
        self.density = float(density)
        self._build_masks()
        grams = grams or {}
        for j, (name, weight) in enumerate(self._masked.items()):
            if name in grams:
                weight.copy_(refit_rows(weight, getattr(self, f"mask_{j}"), grams[name]))
        self.apply_masks()

    def calibration_modules(self) -> dict[str, nn.Linear]:
        """Per prunable weight name, its Linear: whose inputs a refit needs (`GramCollector`)."""
        return {f"{p.name}.weight": p.module for p in self.prunables}

    @torch.no_grad()
    def doomed_energy(self) -> float:
        """Share of the squared norm in the groups a prune to the final density would remove
        now: what the penalty must bring near 0 before the cut."""
        return removed_energy(
            self.norms(), self.keep, self.select(self.spec.density), [0] * len(self.groups)
        )["total"]

    @torch.no_grad()
    def _build_masks(self) -> None:
        masks = {}
        for g, keep in zip(self.groups, self.keep):
            masks.update(g.expand(keep))
        for j, name in enumerate(self._masked):
            getattr(self, f"mask_{j}").copy_(masks[name])

    @torch.no_grad()
    def apply_masks(self) -> None:
        if self.is_pruned:
            for param, mask in self._mask_pairs():
                param.masked_fill_(~mask, 0.0)

    @torch.no_grad()
    def mask_grads(self) -> None:
        if self.is_pruned:
            for param, mask in self._mask_pairs():
                if param.grad is not None:
                    param.grad.masked_fill_(~mask, 0.0)

    @torch.no_grad()
    def mask_optimizer_state(self, optimizer: torch.optim.Optimizer) -> None:
        """Zero momentum and second moments of pruned weights, so no stale update moves them."""
        for param, mask in self._mask_pairs():
            for value in optimizer.state.get(param, {}).values():
                if isinstance(value, Tensor) and value.shape == param.shape:
                    value.masked_fill_(~mask, 0)

    def masks(self) -> dict[str, Tensor]:
        """Per parameter name, the bool mask of kept weights (empty before pruning)."""
        if not self.is_pruned:
            return {}
        return {name: mask for name, (_, mask) in zip(self._masked, self._mask_pairs())}

    @torch.no_grad()
    def fingerprint(self) -> Tensor:
        """`(3,)` float64 summary of masks, alpha and weights, for cross-rank comparison."""
        keep = sum(
            float((k.double() * torch.arange(1, len(k) + 1, device=k.device)).sum())
            for k in self.keep
        )
        alpha = sum(float(a.double().sum()) for a in self.alpha)
        weights = sum(float(p.module.weight.double().sum()) for p in self.prunables)
        device = self.prunables[0].module.weight.device
        return torch.tensor([keep, alpha, weights], dtype=torch.float64, device=device)

    # --------------------------------------------------------------- state
    def get_extra_state(self) -> dict:
        """Plain data beside the buffers: what the checkpoint was pruned with, and the report
        card of its cut."""
        return {
            "identity": self.spec.identity(),
            "groups": [g.label for g in self.groups],
            "density": self.density,
            "pruned_energy": self.pruned_energy,
        }

    def set_extra_state(self, state: dict) -> None:
        # torch loads the buffers first, but reports their mismatches only after this check,
        # so a run resumed under other settings hears which setting differs
        if state["identity"] != self.spec.identity():
            theirs, ours = state["identity"], self.spec.identity()
            keys = list(ours) + [k for k in theirs if k not in ours]
            diff = {k: (theirs.get(k), ours.get(k)) for k in keys if theirs.get(k) != ours.get(k)}
            raise ConfigError(
                "this checkpoint was pruned with different settings and cannot resume this run: "
                + ", ".join(
                    f"prune.{k}: checkpoint {a!r} vs run {b!r}" for k, (a, b) in diff.items()
                )
            )
        if state["groups"] != [g.label for g in self.groups]:
            raise ConfigError("checkpoint pruning groups do not match this model's prunable layers")
        self.density = float(state["density"])
        self.pruned_energy = state.get("pruned_energy")


def floor_first(scores: Tensor, alive: Tensor, floor: float) -> Tensor:
    """`scores` with the best `ceil(floor * G)` alive groups raised above any other score, so
    a global ranking keeps at least that share of this set."""
    count = min(math.ceil(floor * len(scores)), int(alive.sum()))
    ranked = torch.where(alive, scores, torch.full_like(scores, float("-inf")))
    top = torch.argsort(ranked, descending=True, stable=True)[:count]
    raised = scores.clone()
    raised[top] = float("inf")
    return raised


def removed_energy(
    norms: list[Tensor], before: list[Tensor], after: list[Tensor], layers: list[int]
) -> dict:
    """Share of the squared group norms held by groups kept in `before` but not in `after`:
    over all sets (`total`) and per layer (`per_layer`)."""
    removed, held = {}, {}
    for n, b, a, layer in zip(norms, before, after, layers):
        energy = n.detach().double().square()
        removed[layer] = removed.get(layer, 0.0) + float(energy[b & ~a].sum())
        held[layer] = held.get(layer, 0.0) + float(energy.sum())
    share = lambda r, h: r / h if h > 0 else 0.0  # noqa: E731
    return {
        "total": share(sum(removed.values()), sum(held.values())),
        "per_layer": {str(k): share(removed[k], held[k]) for k in sorted(removed)},
    }


def _qk_coupled_instead(
    groups: list, prunables: list[PrunableLinear], num_heads: int, cut: str
) -> list:
    """`groups` with each layer's q and k matrices replaced by one coupled set (their biases ride
    along). cut='dims': group d is row d of q with row d of k, ranked and kept inside each head
    (a cut removes one term q_d . k_d of its head's logits). cut='heads': group h is all rows of
    head h in q and in k (a cut head attends uniformly: its logits lose every term)."""
    by_layer: dict[int, dict[str, PrunableLinear]] = {}
    for p in prunables:
        by_layer.setdefault(p.layer, {})[p.role] = p
    out, done = [], set()
    for g in groups:
        layer = by_layer[g.layer]
        if g.role not in ("q", "k"):
            if "q" in g.role.split("+"):
                raise ConfigError(
                    f"prune.qk={cut!r}: {g.label} holds q and k in one fused Linear "
                    f"({g.role}); cut it with prune.qk='same'"
                )
            out.append(g)
            continue
        if g.layer in done:
            continue
        done.add(g.layer)
        count = layer["q"].module.out_features
        if count % num_heads or layer["k"].module.out_features != count:
            raise ConfigError(
                f"prune.qk={cut!r}: layer {g.layer} has q and k of {count} and "
                f"{layer['k'].module.out_features} rows, not one width split into "
                f"{num_heads} heads; use prune.qk='same'"
            )
        width = 1 if cut == "dims" else count // num_heads
        members = []
        for role in ("q", "k"):
            lin = layer[role].module
            members.append(Member(f"{layer[role].name}.weight", lin.weight, 0, width))
            if lin.bias is not None:
                members.append(
                    Member(f"{layer[role].name}.bias", lin.bias, 0, width, prunable=False)
                )
        # dims: `count` groups ranked inside each head; heads: one group per head, one ranking
        groups_count, sections = (count, num_heads) if cut == "dims" else (num_heads, 1)
        kind = f"qk_{cut}"
        out.append(
            CoupledGroups(f"layer.{g.layer}.{kind}", g.layer, kind, members, groups_count, sections)
        )
    return out


def _device(g) -> torch.device:
    return next(iter(g.params.values())).device


def _coupled_groups(
    prunables: list[PrunableLinear], num_heads: int, parts: dict[str, int], geometry: str
) -> list[CoupledGroups]:
    """Per layer: one CoupledGroups of heads, one of FFN neurons. A fused q/k/v Linear gives
    one row block per role, a gated FFN input its input and gate halves: a head or a neuron
    takes its rows from each. `parts`: `row_parts` of the prunables."""
    by_layer: dict[int, dict[str, list[tuple[str, nn.Linear, int]]]] = {}
    for p in prunables:
        height = p.module.out_features // parts[p.name]
        roles = p.parts if len(p.parts) == parts[p.name] else p.parts * parts[p.name]
        for i, role in enumerate(roles):
            by_layer.setdefault(p.layer, {}).setdefault(role, []).append(
                (p.name, p.module, i * height)
            )
    groups = []
    for layer, roles in sorted(by_layer.items()):
        for coupled, kind in ((HEAD_ROLES, "heads"), (NEURON_ROLES, "neurons")):
            present = [r for r in coupled if r in roles]
            if not present:
                continue
            if len(present) != len(coupled):
                raise ConfigError(
                    f"prune.geometry={geometry} couples roles {list(coupled)}; layer {layer} "
                    f"has only {present}: add the missing roles to prune.roles"
                )
            groups.append(_coupled(layer, kind, coupled, roles, num_heads))
    return groups


def _coupled(layer, kind, coupled, roles, num_heads) -> CoupledGroups:
    # the last role of each set (attn_out, ffn_out) reads the group on its input side (columns)
    inner_name, inner, _ = roles[coupled[-1]][0]
    count = num_heads if kind == "heads" else inner.weight.shape[1]
    width = inner.weight.shape[1] // count
    members = []
    for role in coupled[:-1]:
        for name, module, offset in roles[role]:
            members.append(Member(f"{name}.weight", module.weight, 0, width, offset=offset))
            if module.bias is not None:
                members.append(
                    Member(f"{name}.bias", module.bias, 0, width, prunable=False, offset=offset)
                )
    members.append(Member(f"{inner_name}.weight", inner.weight, 1, width))
    return CoupledGroups(f"layer.{layer}.{kind}", layer, kind, members, count)
