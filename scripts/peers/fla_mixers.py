"""Side-by-side CPU timings of the mixers of issue 21 (gated_deltanet, retnet, hgrn2, mamba2, fox, mlstm): each fla layer
as it ships, in float32, with its Triton ops replaced by fla's own naive PyTorch forms (the best CPU peer: the chunked
naive form where fla has one), and xlstm's mLSTMLayer with each of its PyTorch backends, against `seqlab bench` of the
same layer, and SequenceLab's GLA / DeltaNet at the same state
size (issue 21: "within 1.5x of GLA's or DeltaNet's time for the same state size").

    python scripts/peers/fla_mixers.py --seqlab BIN --refsrc DIR [--shape lra] [--rounds 2] [--only NAME]

Protocol (that of the shared peers harness, docs/performance.md): torch.set_num_threads(2), float32, x ~ N(0, 1)
[B, L, D], loss = sum(y * g) for a fixed random g; fwd+bwd = forward + backward; 2 warm-ups, then the median of 5
(3 when the first run exceeds 3 s); each peer in its own process, alternating with `seqlab bench --layer NAME
--shape SHAPE --json` (release build), ROUNDS times. Prints one TSV row per measurement (round, case, who, ms).

The peers: the fla layer class with SequenceLab's default options at D (scripts/fixtures/references/fla.py
`reference_arguments`), its forward re-compiled in a copy of its module's globals where the Triton ops are bound to
float32 wrappers of fla's naive ops:
    gated_deltanet  chunk_gated_delta_rule -> fla.ops.gated_delta_rule.naive.naive_chunk_gated_delta_rule (chunk 64)
    retnet          chunk_retention        -> fla.ops.simple_gla.naive.naive_chunk_simple_gla (chunk 64, g = log gamma_h)
    hgrn2           chunk_gla              -> fla.ops.gla.naive.naive_recurrent_gla (fla has no chunked naive GLA)
    mamba2          torch_forward as fla ships it (the chunked naive SSD), float32
    fox             parallel_forgetting_attn -> fla.ops.forgetting_attn.naive.naive_forgetting_attn (full score matrix)
    mlstm           xlstm (NX-AI/xlstm, DIR/xlstm) `mLSTMLayer` with SequenceLab's defaults, its cell's backend as it ships
                    (`parallel_stabilized_simple`, the full L x L gate matrix: peer "peer"), and with
                    `chunkwise_simple` (chunk 64, a Python loop over chunks: peer "peer-chunkwise")
and the shims of fla.py for ShortConvolution, the norms and RoPE (float32 tables here).
"""
import argparse
import inspect
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
import types

HERE = os.path.dirname(os.path.abspath(__file__))
SHAPES = {"lra": (8, 1024, 128), "long": (1, 16384, 128)}
LAYERS = ["gated_deltanet", "retnet", "hgrn2", "mamba2", "fox", "mlstm"]
# SequenceLab's GLA / DeltaNet with the same recurrent state per sequence as each new layer's default at D 128.
SAME_STATE = {
    "gated_deltanet": ("deltanet", "heads=4,head_dim=32,expand_v=2"),         # 4 x 32 x 64 = 8192
    "retnet": ("gla", "heads=8,expand_k=1,expand_v=2"),                       # 8 x 16 x 32 = 4096
    "hgrn2": ("gla", "heads=1,expand_k=1,expand_v=1"),                        # 1 x 128 x 128 = 16384
    "mamba2": ("gla", "heads=4,expand_k=4,expand_v=2"),                       # 4 x 128 x 64 = 32768
    "fox": ("attention", "heads=4,rope=false"),                               # the same KV cache, no forget gate
    "mlstm": ("gla", "heads=4,expand_k=2,expand_v=2"),                        # 4 x 64 x 64 = 16384 (mlstm: + n, m)
}
# Extra peers of a layer: name -> the backend variant measured by `peer(layer + ":" + variant, ...)`.
EXTRA_PEERS = {"mlstm": ["chunkwise"]}


def xlstm_peer(variant, shape, refsrc):
    """Median fwd+bwd ms of xlstm's mLSTMLayer (float32, 2 threads) with the given cell backend."""
    import torch
    sys.path.insert(0, os.path.join(os.path.abspath(refsrc), "xlstm"))
    from xlstm.blocks.mlstm import backends
    from xlstm.blocks.mlstm.layer import mLSTMLayer, mLSTMLayerConfig
    torch.set_num_threads(2)
    B, L, D = SHAPES[shape]
    m = mLSTMLayer(mLSTMLayerConfig(embedding_dim=D, context_length=L, num_heads=4, proj_factor=2.0, conv1d_kernel_size=4,
                                    qkv_proj_blocksize=4, bias=False, dropout=0.0)).float()
    if variant == "chunkwise":
        m.mlstm_cell.backend_fn = lambda queries, keys, values, igate_preact, fgate_preact, **kw: backends.chunkwise_simple(
            queries, keys, values, igate_preact.squeeze(-1), fgate_preact.squeeze(-1), chunk_size=64)
    torch.manual_seed(0)
    x = torch.randn(B, L, D, requires_grad=True)
    g = torch.randn(B, L, D)
    return timed(lambda: (m(x) * g).sum().backward(), list(m.parameters()) + [x])


def timed(fwd_bwd, leaves):
    """The protocol's median of fwd+bwd ms (2 warm-ups, then 5 runs, 3 when the first exceeds 3 s)."""
    def run():
        for p in leaves:
            p.grad = None
        start = time.perf_counter()
        fwd_bwd()
        return (time.perf_counter() - start) * 1000
    first = run()
    runs = 3 if first > 3000 else 5
    run()
    return statistics.median(run() for _ in range(runs))


def peer(layer, shape, refsrc):
    """Median fwd+bwd ms of the peer of `layer` ("mlstm:chunkwise" for an extra peer; run in this process)."""
    if layer.startswith("mlstm"):
        return xlstm_peer(layer.partition(":")[2], shape, refsrc)
    os.environ["SEQLAB_REFSRC"] = os.path.abspath(refsrc)
    sys.path.insert(0, os.path.join(HERE, "..", "fixtures", "references"))
    sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
    import torch
    import torch.nn.functional as F
    from make_layer_fixtures import load_reference_module
    ref = load_reference_module("fla")
    torch.set_num_threads(2)
    B, L, D = SHAPES[shape]
    fla_dir = list(ref._FLA.__path__)[0]

    def naive(relpath, name):
        namespace = {}
        exec(compile(open(os.path.join(fla_dir, relpath)).read(), relpath, "exec"), namespace)
        return namespace[name]

    def l2(x):
        return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + 1e-6)

    if layer == "gated_deltanet":
        chunk = naive("ops/gated_delta_rule/naive.py", "naive_chunk_gated_delta_rule")

        def op(q, k, v, g=None, beta=None, A_log=None, dt_bias=None, allow_neg_eigval=False, **kw):
            g = -A_log.float().exp() * F.softplus(g.float() + dt_bias)
            beta = torch.sigmoid(beta) * (2.0 if allow_neg_eigval else 1.0)
            return chunk(l2(q), l2(k), v, g, beta, chunk_size=64)[0], None
        module, ops, method = ref.fla_gdn, {"chunk_gated_delta_rule": op, "fused_recurrent_gated_delta_rule": op,
                                            "causal_conv1d": ref._causal_conv1d_op}, "forward"
    elif layer == "retnet":
        chunk = naive("ops/simple_gla/naive.py", "naive_chunk_simple_gla")

        def op(q, k, v, **kw):
            H = q.shape[2]
            g = (1 - 2.0 ** (-5.0 - torch.arange(H, dtype=torch.float32))).log()
            return chunk(q, k, v, g.expand(q.shape[0], q.shape[1], H).contiguous(), chunk_size=64)[0].to(q.dtype), None
        module, ops, method = ref.fla_retnet, {"chunk_retention": op, "fused_chunk_retention": op, "parallel_retention": op,
                                               "fused_recurrent_retention": op}, "forward"
    elif layer == "hgrn2":
        recurrent = naive("ops/gla/naive.py", "naive_recurrent_gla")

        def op(q, k, v, gk=None, g=None, **kw):
            return recurrent(q, k, v, gk if gk is not None else g)[0], None

        def rms_linear(x, nw, nb, lw, lb, **kw):
            return F.linear(x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * nw, lw, lb)
        module, ops, method = ref.fla_hgrn2, {"chunk_gla": op, "fused_chunk_gla": op, "fused_recurrent_gla": op,
                                              "rms_norm_linear": rms_linear, "swish": F.silu}, "forward"
    elif layer == "fox":
        attend = naive("ops/forgetting_attn/naive.py", "naive_forgetting_attn")
        module, ops, method = ref.fla_fox, {"parallel_forgetting_attn": lambda q, k, v, g, **kw: attend(q, k, v, g).to(q.dtype)}, "forward"
    else:
        module, ops, method = ref.fla_mamba2, {}, "torch_forward"

    cls, kwargs = ref.reference_arguments(dict(name=layer, layer=layer, options={}, d_model=D))
    m = cls(**kwargs).float()
    namespace = dict(vars(module))
    namespace.update(ops)
    source = textwrap.dedent(inspect.getsource(getattr(cls, method)))
    exec(compile(source, inspect.getsourcefile(cls), "exec", flags=__import__("__future__").annotations.compiler_flag,
                 dont_inherit=True), namespace)
    setattr(m, method, types.MethodType(namespace[method], m))
    for sub in m.modules():   # fla.py's module shims (dtype-agnostic), RoPE with float32 tables
        if isinstance(sub, ref.ShortConvolution):
            sub.forward = types.MethodType(ref._short_conv_torch, sub)
        elif isinstance(sub, ref.RMSNormGated):
            sub.forward = types.MethodType(lambda s, x, z=None: ref.rms_norm_gated_ref(
                x, s.weight, s.bias, z=z, eps=s.eps, group_size=s.group_size, norm_before_gate=s.norm_before_gate), sub)
        elif isinstance(sub, ref.FusedRMSNormGated):
            sub.forward = types.MethodType(ref._rms_norm_gated_torch, sub)
        elif isinstance(sub, ref.RMSNorm):
            sub.forward = types.MethodType(ref._rms_norm_torch, sub)
        elif isinstance(sub, ref.RotaryEmbedding):
            def rotary(s, q, k, seqlen_offset=0, **kw):
                inv = 1.0 / (s.base ** (torch.arange(0, s.dim, 2, dtype=torch.float32) / s.dim))
                f = torch.outer(torch.arange(q.shape[1], dtype=torch.float32), inv)
                rot = sys.modules["fla.modules.rotary.ops"].rotary_embedding_ref
                return rot(q, f.cos(), f.sin()), rot(k, f.cos(), f.sin())
            sub.forward = types.MethodType(rotary, sub)
    if layer == "mamba2":
        m.act = F.silu
    torch.manual_seed(0)
    x = torch.randn(B, L, D, requires_grad=True)
    g = torch.randn(B, L, D)
    return timed(lambda: (m(x)[0] * g).sum().backward(), list(m.parameters()) + [x])


def ours(seqlab, layer, shape, options=None):
    args = [seqlab, "bench", "--layer", layer, "--shape", shape, "--json"] + (["--options", options] if options else [])
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines() if "fwd_bwd_ms" in line))["fwd_bwd_ms"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seqlab", required=True)
    parser.add_argument("--refsrc", required=True)
    parser.add_argument("--shape", default="lra", choices=sorted(SHAPES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="")
    parser.add_argument("--peer", help=argparse.SUPPRESS)   # internal: one peer measurement in this process
    args = parser.parse_args()
    if args.peer:
        print(json.dumps({"ms": peer(args.peer, args.shape, args.refsrc)}))
        return
    for r in range(1, args.rounds + 1):
        for layer in [name for name in LAYERS if args.only in name]:
            for variant in [""] + EXTRA_PEERS.get(layer, []):
                name = layer + (":" + variant if variant else "")
                p = subprocess.run([sys.executable, __file__, "--seqlab", args.seqlab, "--refsrc", args.refsrc, "--shape",
                                    args.shape, "--peer", name], capture_output=True, text=True)
                ms = json.loads(p.stdout.strip().splitlines()[-1])["ms"] if p.returncode == 0 else None
                who = "peer" + ("-" + variant if variant else "")
                print(f"{r}\t{layer}\t{who}\t{ms if ms is not None else 'failed: ' + p.stderr.strip().splitlines()[-1]}", flush=True)
            print(f"{r}\t{layer}\tseqlab\t{ours(args.seqlab, layer, args.shape)}", flush=True)
            base, options = SAME_STATE[layer]
            print(f"{r}\t{layer}\tseqlab-{base}-same-state\t{ours(args.seqlab, base, args.shape, options)}", flush=True)


if __name__ == "__main__":
    main()
