#!/usr/bin/python3
"""Generates the weight-file fixtures in tests/Engine/Fixtures/weights/ (checkpoints in several on-disk
formats plus PyTorch's expected outputs and input gradients) that ModelGuardian's weight readers
must load and reproduce.

How to run (from anywhere; Debian's python3 with python3-torch 1.13, python3-torchvision 0.14 and
numpy 1.24; neither the safetensors module nor TensorFlow is needed or used):

    /usr/bin/python3 tests/Engine/Fixtures/make_weight_fixtures.py            # (re)write every file
    /usr/bin/python3 tests/Engine/Fixtures/make_weight_fixtures.py --verify   # re-read and check them

Generation is deterministic (fixed seeds; the legacy torch.save files get their storage keys
normalised, see below), so re-running rewrites byte-identical files. --verify re-loads every
checkpoint (torch.load with weights_only=True, a hand-written safetensors parser, pickle.load of
the TF pickles with stand-in dnnlib classes), recomputes every network in float64 from the tensors
it read back and compares with the .expected.bin files, checks that the three TF pickles agree with
stylegan-d128-genforce.pth exactly, and prints every file's size, tensor names and pickle globals.
It NEVER unpickles anything under hostile/: those are only scanned with pickletools.genops, which
parses opcodes without executing them.

Networks (random weights, fixed seeds; BatchNorm is made non-trivial: gamma uniform in [0.1, 0.4]
for the residual-branch BNs (layerX.Y.bn1/bn2/bn3) so deep nets stay tame, and in [0.5, 1.5] for
the stem's bn1 and the shortcuts' layerX.0.downsample.1 (with small shortcut gammas the identity
path shrinks about 4x per stage and the outputs hardly depend on the input); beta and running_mean
0.1*N(0,1), running_var uniform in [0.5, 1.5], num_batches_tracked = 12345 (int64); evaluated in
eval mode. Conv weights use torchvision's own initialisation under a fixed seed):

  resnet18w8-cifar   torchvision ResNet-18 (BasicBlock [2,2,2,2]) with planes [8,16,32,64]; CIFAR
                     stem conv1 = Conv2d(3, 8, 3, stride 1, pad 1, bias=False), maxpool is
                     nn.Identity (no parameters), fc 64 -> 10. fc.weight holds float16-representable
                     values (it is stored as F16 in the .safetensors file). Input: 2 x 3 x 32 x 32,
                     N(0,1).
  resnet50w4         torchvision ResNet-50 (Bottleneck [3,4,6,3]) with planes [4,8,16,32] (stage
                     outputs 16,32,64,128); ImageNet stem conv1 7x7/2 pad 3 (3 -> 4), bn1, relu,
                     maxpool 3/2/1; fc 128 -> 1. Input: 2 x 3 x 64 x 64, N(0,1).
  stylegan-d32       StyleGAN v1 discriminator at lod 0 (tests/Oracle/torch_oracle.py:stylegan_d),
                     resolution 32, fmap_base 512, fmap_max 32, mbstd group 4 (a batch of 2 makes
                     the group 2). Input 2 x 3 x 32 x 32, uniform in [-1, 1].
  stylegan-d128      same, resolution 128, fmap_base 1024, fmap_max 16; the 128x128 block uses the
                     fused 4x4 stride-2 down-sampling path. Input 2 x 3 x 128 x 128, uniform [-1,1].

StyleGAN tensors (genforce names, PyTorch layouts: conv [out,in,kh,kw], dense [out,in]; weights are
the UNSCALED N(0,1) values (equalised learning rate: the runtime multiplies by gain/sqrt(fan_in),
gain sqrt(2) except 1 for the last dense layer), biases 0.1*N(0,1)); nf(r) = min(fmap_base // r,
fmap_max); blocks b = 0..B-1 for r = R, R/2, ..., 8 (B = log2(R) - 2):
    lod                         []                   scalar 0.0                        (ignored)
    input{b}.weight / .bias     [nf(R>>b), 3, 1, 1]  FromRGB; only input0 is used at lod 0
    layer{2b}.weight / .bias    [nf(r), nf(r), 3, 3]
    layer{2b+1}.weight / .bias  [nf(r/2), nf(r), 3, 3]  (stored 3x3 also when fused, r >= 128)
    layer{2b+1}.blur.kernel     [nf(r), 1, 3, 3]     [1,2,1]x[1,2,1]/16 per channel    (ignored)
    input{B}.weight / .bias     [nf(4), 3, 1, 1]                                       (ignored)
    layer{2B}.weight / .bias    [nf(4), nf(4)+1, 3, 3]  4x4 conv after minibatch-stddev
    layer{2B+1}.weight / .bias  [nf(2), nf(4)*16]    Dense0
    layer{2B+2}.weight / .bias  [1, nf(2)]           Dense1 (gain 1, linear)
  The blur buffer has genforce's real layout [C, 1, 3, 3] (genforce's BlurLayer builds [3,3,C,1] and
  then np.transpose(kernel, [2, 3, 0, 1])). Key order is genforce's registration order: lod, then
  input0, layer0, layer1 (weight, bias, blur.kernel), input1, layer2, layer3, ..., input{B},
  layer{2B}, layer{2B+1}, layer{2B+2}.

Files in tests/Engine/Fixtures/weights/ (manifest.json lists the checkpoints with format, wrapper, arch,
expected file and the names present in the file that the engine must ignore):

  resnet18w8-cifar.expected.bin, resnet50w4.expected.bin, stylegan-d32.expected.bin,
  stylegan-d128.expected.bin
      Expected-output files in torch_oracle.write_tensors' format (little-endian: uint32 count; per
      tensor uint16 name length, UTF-8 name, uint8 rank, int32 dims[rank], float32 data). Tensors:
      "x" (the float32 input), "y" = net(x) ([2,10], [2,1], [2,1], [2,1]) and "dx" = d(sum(y))/dx,
      both computed in float64 from the float32 x and float32 weights, then rounded to float32.

  resnet18w8-cifar.pt            torch.save(model.state_dict()) - default zip format.
  resnet18w8-cifar-legacy.pt     the same dict, torch.save(..., _use_new_zipfile_serialization=False).
  resnet18w8-cifar.safetensors   the same tensors in safetensors format, written by hand: uint64 LE
                                 header length N, N bytes of compact JSON ({"__metadata__":
                                 {"format":"pt"}, then one entry per tensor {"dtype","shape",
                                 "data_offsets":[begin,end]}), space-padded so N % 8 == 0, then the
                                 raw LE data (offsets relative to the data start). Data order is
                                 the safetensors library's: by dtype size descending, then name:
                                 I64 (num_batches_tracked), F32 (everything else), F16 (fc.weight).
  resnet50w4-cnndetection.pth    CNNDetection's layout: {'model': state_dict, 'optimizer':
                                 Adam(lr 1e-4, betas (0.9, 0.999)).state_dict() after one step on a
                                 throw-away copy of the model (so it holds 'step', 'exp_avg',
                                 'exp_avg_sq' tensors; over fc.weight and fc.bias only, to keep the
                                 file small: real CNNDetection files cover every parameter),
                                 'total_steps': 1234}.
  resnet50w4-dataparallel.pth    nn.DataParallel(model).state_dict(): every key prefixed "module.".
  stylegan-d32-genforce.pth      {'discriminator': state_dict} (genforce names incl. ignored extras).
  stylegan-d128-genforce.pth     the same for stylegan-d128.
  stylegan-d128-karras.pkl       NVIDIA StyleGAN (TensorFlow) network pickle, protocol 3 as NVIDIA's
                                 training loop wrote them, built without TF: the tuple (G, D, Gs) of
                                 dnnlib.tflib.network.Network objects (stand-in class). Each pickles
                                 via NEWOBJ + BUILD with the state dict {'version': 3, 'name',
                                 'static_kwargs', 'components', 'build_module_src',
                                 'build_func_name', 'variables': [(name, value), ...]}.
                                 'build_module_src' is Python source that would run
                                 os.system('echo pwned') if executed: a reader must never run it.
                                 G has components {'mapping', 'synthesis'} (small dummy networks);
                                 Gs is a separate copy of G. D (name 'D', build_func_name 'D_basic',
                                 static_kwargs resolution 128, fmap_base 1024, fmap_max 16,
                                 mbstd_group_size 4, fused_scale 'auto', ...) holds the SAME
                                 weights as stylegan-d128-genforce.pth, so stylegan-d128.expected.bin
                                 serves both. Its variables, in D_basic's creation order:
                                   lod                      numpy float32 SCALAR (np.float32(0.0),
                                                            what tflib.run returns for a 0-d var)
                                   FromRGB_lod0/weight      [1,1,3,nf(128)]  and /bias [nf(128)]
                                   {r}x{r}/Conv0/weight     [3,3,nf(r),nf(r)] and /bias
                                   {r}x{r}/Conv1_down/weight [3,3,nf(r),nf(r/2)] and /bias
                                   FromRGB_lod{k}/weight, /bias after block k-1 (k = 1..5; ignored)
                                   4x4/Conv/weight          [3,3,nf(4)+1,nf(4)] and /bias
                                   4x4/Dense0/weight        [nf(4)*16, nf(2)]  and /bias
                                   4x4/Dense1/weight        [nf(2), 1]         and /bias
                                 All other variables are float32 ndarrays (C order). Mapping to
                                 genforce: input{k} = FromRGB_lod{k}; layer{2b} = {R}x{R}/Conv0 and
                                 layer{2b+1} = {R}x{R}/Conv1_down with R = 128 >> b; layer{2B} =
                                 4x4/Conv; layer{2B+1} = 4x4/Dense0; layer{2B+2} = 4x4/Dense1;
                                 conv weight [kh,kw,in,out] -> [out,in,kh,kw] (permute 3,2,0,1),
                                 dense [in,out] -> [out,in]; biases unchanged; TF's wscale weights
                                 are unscaled exactly like genforce's. D_basic runs NCHW, so the
                                 flatten before Dense0 has PyTorch's C,H,W order: NO permutation of
                                 Dense0's input dimension is needed. The script asserts that this
                                 conversion reproduces the genforce tensors bit for bit.
                                 Pickle globals (GLOBAL opcodes at protocol 3): 'dnnlib.tflib.network
                                 Network', 'numpy.core.multiarray _reconstruct', 'numpy ndarray',
                                 'numpy dtype', 'numpy.core.multiarray scalar' (for lod). ndarray
                                 state: (1, shape, dtype, is_fortran=False, raw bytes as BINBYTES).
  stylegan-d128-karras-protocol2.pkl  the same at protocol 2: raw bytes appear as
                                 _codecs.encode(<latin-1 str>, 'latin1') (extra GLOBAL
                                 '_codecs encode').
  stylegan-d128-karras-protocol4.pkl  the same at protocol 4: FRAME, STACK_GLOBAL (module and
                                 name pushed as SHORT_BINUNICODE), MEMOIZE.

  hostile/os-system.pt         genuine torch.save zip whose data.pkl holds {'state_dict': {'w':
                               tensor}, 'payload': X} where X reduces to os.system('echo pwned')
                               (GLOBAL 'os system' + REDUCE). Never load it.
  hostile/os-system-legacy.pt  the same in the legacy torch.save format.
  hostile/os-system.pkl        plain protocol-3 pickle of a TF-Network-like state dict whose
                               'variables' list contains ('evil', X) (GLOBAL 'os system').
  hostile/posix-system.pt      torch.save zip of {'payload': X} pickled by the standard pickler on
                               Linux, where os.system is posix.system: GLOBAL 'posix system'.

Format notes for readers:
  * zip torch.save (torch 1.13): entries <stem>/data.pkl, <stem>/data/0, <stem>/data/1, ...,
    <stem>/version ("3\\n"), where <stem> is the file name without extension (e.g.
    "resnet18w8-cifar/"); a reader must take the folder from the entry names, not assume
    "archive/". Entries are stored uncompressed, data records 64-byte aligned. data.pkl is
    protocol 2; tensors are REDUCE of GLOBAL 'torch._utils _rebuild_tensor_v2' with args
    (storage, storage_offset, size, stride, requires_grad, OrderedDict() backward hooks), where
    storage is a BINPERSID of the tuple ('storage', GLOBAL 'torch FloatStorage' (or LongStorage,
    ...), key '0', location 'cpu', numel). The state dict is GLOBAL 'collections OrderedDict' +
    SETITEMS, followed by BUILD with {'_metadata': OrderedDict(...)} (module version info).
    Scalars (num_batches_tracked, lod) have size () and stride () (EMPTY_TUPLE). Zip entries of
    the storages are ordered by key as a string (data/0, data/1, data/10, data/100, ...), and all
    timestamps are 1980-01-01. resnet50w4-cnndetection.pth's 'optimizer' adds BINFLOAT (8-byte
    BIG-endian double: lr, betas, eps), NONE (foreach), NEWFALSE/NEWTRUE, TUPLE2, int dict keys
    and 'step' scalar tensors; torch 1.13's own weights_only loader rejects that file (BINFLOAT).
  * legacy torch.save: five consecutive protocol-2 pickles in one file: MAGIC_NUMBER
    (0x1950a86a20f9469cfc6c, a LONG1 opcode), PROTOCOL_VERSION (1001), sys_info dict
    {'protocol_version': 1001, 'little_endian': True, 'type_sizes': {...}}, the object (persistent ids
    are 6-tuples ('storage', storage type, key, 'cpu', numel, None)), the sorted list of storage
    keys; then, per key in that order, int64 LE numel followed by numel * element-size raw LE
    bytes. torch writes str(id-of-storage) keys (memory addresses, different on every run); this
    script replaces them, in first-use order, by deterministic address-like 14-digit strings
    (94100000000000 + 4096 * i) and writes the storages in that (sorted) order, so the file is
    otherwise exactly what torch's _legacy_save produces.
"""
import argparse
import copy
import io
import json
import os
import pickle
import pickletools
import struct
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torchvision.models.resnet as tvr

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "weights")
sys.path.insert(0, os.path.join(HERE, "..", "Oracle"))
import torch_oracle as oracle  # noqa: E402  (StyleGAN D reference, mbstd, write/read_tensors)

NUM_BATCHES_TRACKED = 12345
LEGACY_KEY_BASE = 94100000000000

STYLEGAN = {
    "stylegan-d32": dict(resolution=32, fmap_base=512, fmap_max=32, group=4, seed=3201),
    "stylegan-d128": dict(resolution=128, fmap_base=1024, fmap_max=16, group=4, seed=12801),
}

PAYLOAD_SRC = '''"""Network build module (fixture): executing this would run a shell command."""
import os
os.system('echo pwned')


def D_basic(images_in, labels_in, **kwargs):
    raise NotImplementedError
'''


# ----------------------------------------------------------------------------------------------
# ResNets


ScaledResNet = oracle.ScaledResNet  # shared with the test-time oracle


RESNETS = {
    "resnet18w8-cifar": dict(block=tvr.BasicBlock, layers=[2, 2, 2, 2], planes=[8, 16, 32, 64],
                             num_classes=10, stem="cifar", side=32, seed=1808, depth=18),
    "resnet50w4": dict(block=tvr.Bottleneck, layers=[3, 4, 6, 3], planes=[4, 8, 16, 32],
                       num_classes=1, stem="imagenet", side=64, seed=5004, depth=50),
}


def build_resnet(name):
    c = RESNETS[name]
    torch.manual_seed(c["seed"])
    m = ScaledResNet(c["block"], c["layers"], c["planes"], c["num_classes"], c["stem"])
    g = torch.Generator().manual_seed(c["seed"] + 1)
    with torch.no_grad():
        for mname, mod in m.named_modules():
            if isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                # residual-branch BNs small so deep nets stay tame; the shortcut's downsample.1 keeps
                # [0.5, 1.5], else the identity path shrinks ~4x per stage and y barely depends on x
                residual = mname.startswith("layer") and ".downsample." not in mname
                lo, hi = (0.1, 0.4) if residual else (0.5, 1.5)
                mod.weight.copy_(lo + (hi - lo) * torch.rand(n, generator=g))
                mod.bias.copy_(0.1 * torch.randn(n, generator=g))
                mod.running_mean.copy_(0.1 * torch.randn(n, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(n, generator=g))
                mod.num_batches_tracked.fill_(NUM_BATCHES_TRACKED)
        if name == "resnet18w8-cifar":  # stored as F16 in the .safetensors file
            m.fc.weight.copy_(m.fc.weight.half().float())
    m.eval()
    return m


def resnet_input(name):
    c = RESNETS[name]
    g = torch.Generator().manual_seed(c["seed"] + 2)
    return torch.randn(2, 3, c["side"], c["side"], generator=g)


def resnet_expected(model, x):
    m = copy.deepcopy(model).double().eval()
    x64 = x.double().requires_grad_(True)
    y = m(x64)
    (dx,) = torch.autograd.grad(y.sum(), x64)
    return OrderedDict([("x", x), ("y", y.detach().float()), ("dx", dx.float())])


# ----------------------------------------------------------------------------------------------
# StyleGAN discriminators (genforce names)


def nf_fn(c):
    return lambda r: min(c["fmap_base"] // r, c["fmap_max"])


def blur_kernel(channels):
    k = np.array([1, 2, 1], dtype=np.float32).reshape(1, -1)
    k = k.T.dot(k)
    k /= np.sum(k)
    k = np.tile(k[:, :, np.newaxis, np.newaxis], [1, 1, channels, 1])  # [3,3,C,1]
    return torch.from_numpy(np.ascontiguousarray(np.transpose(k, [2, 3, 0, 1])))  # genforce: [C,1,3,3]


def build_stylegan(name):
    """An nn.Module tree with genforce's names, so state_dict() has genforce's keys and _metadata."""
    c = STYLEGAN[name]
    nf = nf_fn(c)
    g = torch.Generator().manual_seed(c["seed"])

    def block(cout, cin, k=None):
        m = nn.Module()
        shape = (cout, cin, k, k) if k else (cout, cin)
        m.weight = nn.Parameter(torch.randn(*shape, generator=g))
        m.bias = nn.Parameter(0.1 * torch.randn(cout, generator=g))
        return m

    root = nn.Module()
    root.register_buffer("lod", torch.zeros(()))
    b, r = 0, c["resolution"]
    while r > 4:
        root.add_module("input%d" % b, block(nf(r), 3, 1))
        root.add_module("layer%d" % (2 * b), block(nf(r), nf(r), 3))
        down = block(nf(r // 2), nf(r), 3)
        blur = nn.Module()
        blur.register_buffer("kernel", blur_kernel(nf(r)))
        down.add_module("blur", blur)
        root.add_module("layer%d" % (2 * b + 1), down)
        b, r = b + 1, r // 2
    root.add_module("input%d" % b, block(nf(4), 3, 1))
    root.add_module("layer%d" % (2 * b), block(nf(4), nf(4) + 1, 3))
    root.add_module("layer%d" % (2 * b + 1), block(nf(2), nf(4) * 16))
    root.add_module("layer%d" % (2 * b + 2), block(1, nf(2)))
    return root.state_dict()


def stylegan_blocks(c):
    return int(np.log2(c["resolution"])) - 2


def stylegan_ignored(c):
    B = stylegan_blocks(c)
    names = ["lod"]
    for k in range(1, B + 1):
        names += ["input%d.weight" % k, "input%d.bias" % k]
    names += ["layer%d.blur.kernel" % (2 * b + 1) for b in range(B)]
    return names


def stylegan_input(name):
    c = STYLEGAN[name]
    g = torch.Generator().manual_seed(c["seed"] + 1)
    r = c["resolution"]
    return torch.rand(2, 3, r, r, generator=g) * 2 - 1


def stylegan_forward64(name, sd, x):
    c = STYLEGAN[name]
    p = {"resolution": c["resolution"], "fmap_base": c["fmap_base"], "fmap_max": c["fmap_max"], "group": c["group"]}
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # stylegan_d builds its blur kernel in the default dtype
    try:
        t = {k: v.detach().double() for k, v in sd.items()}
        x64 = x.double().requires_grad_(True)
        t["x"] = x64
        y = oracle.stylegan_d(p, t)
        (dx,) = torch.autograd.grad(y.sum(), x64)
    finally:
        torch.set_default_dtype(old)
    return OrderedDict([("x", x), ("y", y.detach().float()), ("dx", dx.float())])


# ----------------------------------------------------------------------------------------------
# NVIDIA StyleGAN TF pickle (no TensorFlow): stand-in dnnlib.tflib.network.Network


def install_fake_dnnlib():
    names = ["dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"]
    mods = []
    for n in names:
        if n not in sys.modules:
            sys.modules[n] = types.ModuleType(n)
        mods.append(sys.modules[n])
    mods[0].tflib = mods[1]
    mods[1].network = mods[2]
    if not hasattr(mods[2], "Network"):
        class Network:
            """Pickles like dnnlib.tflib.network.Network: NEWOBJ + BUILD(state dict)."""

            def __init__(self, state=None):
                self._state = state

            def __getstate__(self):
                return self._state

            def __setstate__(self, state):
                self._state = state

        Network.__module__ = "dnnlib.tflib.network"
        Network.__qualname__ = "Network"
        mods[2].Network = Network
    return mods[2].Network


def tf_name_map(c):
    """genforce name -> (TF name, kind) in D_basic's variable creation order."""
    nf = nf_fn(c)
    res = c["resolution"]
    B = stylegan_blocks(c)
    out = [("lod", "lod", "scalar"), ("input0.weight", "FromRGB_lod0/weight", "conv"), ("input0.bias", "FromRGB_lod0/bias", "bias")]
    for b in range(B):
        R = res >> b
        out += [("layer%d.weight" % (2 * b), "%dx%d/Conv0/weight" % (R, R), "conv"),
                ("layer%d.bias" % (2 * b), "%dx%d/Conv0/bias" % (R, R), "bias"),
                ("layer%d.weight" % (2 * b + 1), "%dx%d/Conv1_down/weight" % (R, R), "conv"),
                ("layer%d.bias" % (2 * b + 1), "%dx%d/Conv1_down/bias" % (R, R), "bias"),
                ("input%d.weight" % (b + 1), "FromRGB_lod%d/weight" % (b + 1), "conv"),
                ("input%d.bias" % (b + 1), "FromRGB_lod%d/bias" % (b + 1), "bias")]
    out += [("layer%d.weight" % (2 * B), "4x4/Conv/weight", "conv"), ("layer%d.bias" % (2 * B), "4x4/Conv/bias", "bias"),
            ("layer%d.weight" % (2 * B + 1), "4x4/Dense0/weight", "dense"), ("layer%d.bias" % (2 * B + 1), "4x4/Dense0/bias", "bias"),
            ("layer%d.weight" % (2 * B + 2), "4x4/Dense1/weight", "dense"), ("layer%d.bias" % (2 * B + 2), "4x4/Dense1/bias", "bias")]
    return out


def genforce_to_tf(c, sd):
    vars_ = []
    for gname, tname, kind in tf_name_map(c):
        t = sd[gname].detach()
        if kind == "scalar":
            v = np.float32(t.item())
        elif kind == "conv":
            v = np.ascontiguousarray(t.permute(2, 3, 1, 0).numpy().astype(np.float32))
        elif kind == "dense":
            v = np.ascontiguousarray(t.t().numpy().astype(np.float32))
        else:
            v = np.ascontiguousarray(t.numpy().astype(np.float32))
        vars_.append((tname, v))
    return vars_


def tf_to_genforce(c, variables):
    d = dict(variables)
    out = OrderedDict()
    for gname, tname, kind in tf_name_map(c):
        v = torch.from_numpy(np.array(d[tname], dtype=np.float32))
        if kind == "conv":
            v = v.permute(3, 2, 0, 1)
        elif kind == "dense":
            v = v.t()
        out[gname] = v.contiguous()
    return out


def network(Network, name, func, static_kwargs, variables, components=None):
    # plain dicts, as dnnlib's Network.__getstate__ builds them (dict(...); insertion-ordered)
    return Network(dict([
        ("version", 3), ("name", name), ("static_kwargs", dict(static_kwargs)), ("components", dict(components or {})),
        ("build_module_src", PAYLOAD_SRC.replace("D_basic", func)), ("build_func_name", func),
        ("variables", variables)]))


def karras_tuple(sd):
    c = STYLEGAN["stylegan-d128"]
    Network = install_fake_dnnlib()
    g = np.random.RandomState(777)
    f32 = lambda *s: g.standard_normal(s).astype(np.float32)

    def make_g(name):
        mapping = network(Network, name + "_mapping", "G_mapping", {"dlatent_size": 16, "mapping_layers": 1},
                          [("Dense0/weight", f32(16, 16)), ("Dense0/bias", f32(16))])
        synthesis = network(Network, name + "_synthesis", "G_synthesis", {"resolution": 128, "fmap_base": 1024, "fmap_max": 16},
                            [("lod", np.float32(0.0)), ("4x4/Const/const", f32(1, 16, 4, 4)),
                             ("ToRGB_lod0/weight", f32(1, 1, 16, 3)), ("ToRGB_lod0/bias", f32(3))])
        return network(Network, name, "G_style", {"resolution": 128, "fmap_base": 1024, "fmap_max": 16, "num_channels": 3},
                       [("lod", np.float32(0.0)), ("dlatent_avg", f32(16))],
                       {"mapping": mapping, "synthesis": synthesis})

    G = make_g("G")
    D = network(Network, "D", "D_basic",
                {"num_channels": 3, "resolution": c["resolution"], "label_size": 0, "fmap_base": c["fmap_base"],
                 "fmap_max": c["fmap_max"], "mbstd_group_size": c["group"], "mbstd_num_features": 1,
                 "fused_scale": "auto", "structure": "auto"},
                genforce_to_tf(c, sd))
    Gs = make_g("Gs")
    return G, D, Gs


# ----------------------------------------------------------------------------------------------
# Picklers: os.system written as 'os system'; legacy torch.save with deterministic storage keys


class FixturePickler(pickle._Pickler):
    """Pure-Python pickler: writes os.system as GLOBAL 'os system' (the C pickler would write
    'posix system' on Linux) and optionally renames legacy storage keys deterministically."""

    key_state = None  # dict shared with legacy_save, or None

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._pid = lambda obj: None

    @property
    def persistent_id(self):
        return self._pid

    @persistent_id.setter
    def persistent_id(self, fn):
        state = self.key_state

        def wrapped(obj):
            r = fn(obj)
            if r is not None and state is not None and r[0] == "storage":
                real = r[2]
                if real not in state["map"]:
                    state["map"][real] = str(LEGACY_KEY_BASE + 4096 * len(state["map"]))
                    state["elsize"][real] = torch._utils._element_size(r[1].dtype)
                r = (r[0], r[1], state["map"][real]) + tuple(r[3:])
            return r

        self._pid = wrapped

    def save_global(self, obj, name=None):
        if obj is os.system:
            if self.proto >= 4:
                self.save("os")
                self.save("system")
                self.write(pickle.STACK_GLOBAL)
            else:
                self.write(pickle.GLOBAL + b"os\nsystem\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


def pickle_module(pickler_cls, on_dump=None):
    def dump(obj, f, protocol=None):
        start = f.tell()
        pickler_cls(f, protocol).dump(obj)
        if on_dump is not None:
            on_dump(start, f.tell())

    return types.SimpleNamespace(__name__="fixture_pickle", Pickler=pickler_cls, dump=dump)


def legacy_save(obj, path):
    state = {"map": {}, "elsize": {}, "dumps": 0, "keys_pos": None, "keys_end": None}

    class P(FixturePickler):
        key_state = state

    def on_dump(start, end):
        state["dumps"] += 1
        if state["dumps"] == 4:  # magic, protocol version, sys_info, [object via Pickler], keys
            state["keys_pos"], state["keys_end"] = start, end

    buf = io.BytesIO()
    torch.save(obj, buf, pickle_module=pickle_module(P, on_dump), _use_new_zipfile_serialization=False)
    raw = buf.getvalue()
    pos = state["keys_pos"]
    real_keys = sorted(state["map"])  # torch's order of the storage blocks after the key list
    assert state["dumps"] == 4 and raw[state["keys_end"] - 1:state["keys_end"]] == pickle.STOP
    ptr = state["keys_end"]
    blocks = {}
    for k in real_keys:
        (n,) = struct.unpack_from("<q", raw, ptr)
        size = 8 + n * state["elsize"][k]
        blocks[state["map"][k]] = raw[ptr:ptr + size]
        ptr += size
    assert ptr == len(raw), "trailing bytes in legacy file"
    fake_keys = sorted(blocks)
    out = io.BytesIO()
    out.write(raw[:pos])
    P(out, 2).dump(fake_keys)
    for k in fake_keys:
        out.write(blocks[k])
    with open(path, "wb") as fh:
        fh.write(out.getvalue())


class Payload:
    """Unpickling this runs a shell command. Only ever pickled here, never unpickled."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


# ----------------------------------------------------------------------------------------------
# safetensors (hand-written)


def write_safetensors(path, sd, f16=()):
    entries = []
    for name, t in sd.items():
        t = t.detach().contiguous()
        if name in f16:
            a, dt = t.numpy().astype("<f2"), "F16"
            assert np.array_equal(a.astype(np.float32), t.numpy()), name + " is not float16-representable"
        elif t.dtype == torch.int64:
            a, dt = t.numpy().astype("<i8"), "I64"
        else:
            assert t.dtype == torch.float32
            a, dt = t.numpy().astype("<f4"), "F32"
        entries.append((name, dt, list(t.shape), a.tobytes()))
    entries.sort(key=lambda e: (-{"I64": 8, "F32": 4, "F16": 2}[e[1]], e[0]))
    header = OrderedDict([("__metadata__", {"format": "pt"})])
    off = 0
    for name, dt, shape, data in entries:
        header[name] = OrderedDict([("dtype", dt), ("shape", shape), ("data_offsets", [off, off + len(data)])])
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for e in entries:
            f.write(e[3])


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack_from("<Q", raw, 0)
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = OrderedDict()
    dts = {"F32": "<f4", "F16": "<f2", "I64": "<i8"}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, en = e["data_offsets"]
        a = np.frombuffer(raw[base + b:base + en], dtype=dts[e["dtype"]]).reshape(e["shape"])
        out[name] = (e["dtype"], torch.from_numpy(a.copy()))
    return header, out


# ----------------------------------------------------------------------------------------------


def path(*p):
    return os.path.join(OUT, *p)


def generate():
    os.makedirs(path("hostile"), exist_ok=True)
    torch.manual_seed(0)
    manifest = []

    # A. resnet18w8-cifar
    name = "resnet18w8-cifar"
    m18 = build_resnet(name)
    oracle.write_tensors(path(name + ".expected.bin"), resnet_expected(m18, resnet_input(name)))
    sd18 = m18.state_dict()
    torch.save(sd18, path(name + ".pt"))
    legacy_save(sd18, path(name + "-legacy.pt"))
    write_safetensors(path(name + ".safetensors"), sd18, f16=("fc.weight",))
    arch18 = {"kind": "resnet", "depth": 18, "width": 8, "stem": "cifar", "outputs": 10, "input_side": 32}
    nbt18 = [k for k in sd18 if k.endswith("num_batches_tracked")]
    for f, fmt in ((name + ".pt", "torch-zip"), (name + "-legacy.pt", "torch-legacy"), (name + ".safetensors", "safetensors")):
        manifest.append({"file": f, "format": fmt, "wrapper": "plain", "arch": arch18,
                         "expected": name + ".expected.bin", "ignored_tensors": nbt18})

    # B. resnet50w4
    name = "resnet50w4"
    m50 = build_resnet(name)
    x50 = resnet_input(name)
    oracle.write_tensors(path(name + ".expected.bin"), resnet_expected(m50, x50))
    sd50 = m50.state_dict()
    throwaway = copy.deepcopy(m50).train()
    opt = torch.optim.Adam(throwaway.fc.parameters(), lr=1e-4, betas=(0.9, 0.999))  # fc only: keeps the file small
    throwaway(x50).sum().backward()
    opt.step()
    torch.save({"model": sd50, "optimizer": opt.state_dict(), "total_steps": 1234}, path(name + "-cnndetection.pth"))
    torch.save(nn.DataParallel(m50).state_dict(), path(name + "-dataparallel.pth"))
    arch50 = {"kind": "resnet", "depth": 50, "width": 4, "stem": "imagenet", "outputs": 1, "input_side": 64}
    nbt50 = [k for k in sd50 if k.endswith("num_batches_tracked")]
    manifest.append({"file": name + "-cnndetection.pth", "format": "torch-zip", "wrapper": "model", "arch": arch50,
                     "expected": name + ".expected.bin", "ignored_tensors": nbt50})
    manifest.append({"file": name + "-dataparallel.pth", "format": "torch-zip", "wrapper": "module-prefix", "arch": arch50,
                     "expected": name + ".expected.bin", "ignored_tensors": ["module." + k for k in nbt50]})

    # C, D. StyleGAN discriminators
    for name, c in STYLEGAN.items():
        sd = build_stylegan(name)
        oracle.write_tensors(path(name + ".expected.bin"), stylegan_forward64(name, sd, stylegan_input(name)))
        torch.save({"discriminator": sd}, path(name + "-genforce.pth"))
        arch = {"kind": "stylegan-d", "resolution": c["resolution"], "fmap_base": c["fmap_base"],
                "fmap_max": c["fmap_max"], "mbstd_group": c["group"]}
        manifest.append({"file": name + "-genforce.pth", "format": "torch-zip", "wrapper": "discriminator", "arch": arch,
                         "expected": name + ".expected.bin", "ignored_tensors": stylegan_ignored(c)})
        if name == "stylegan-d128":
            G, D, Gs = karras_tuple(sd)
            back = tf_to_genforce(c, D._state["variables"])
            blur = {k for k in sd if k.endswith(".blur.kernel")}
            assert set(back) == set(sd) - blur, "TF variables do not cover the genforce state dict"
            for k, v in back.items():
                assert v.shape == sd[k].shape and torch.equal(v, sd[k].detach()), k
            tf_ignored = ["lod"]
            for k in range(1, stylegan_blocks(c) + 1):
                tf_ignored += ["FromRGB_lod%d/weight" % k, "FromRGB_lod%d/bias" % k]
            for proto, suffix in ((3, ""), (2, "-protocol2"), (4, "-protocol4")):
                f = "stylegan-d128-karras%s.pkl" % suffix
                with open(path(f), "wb") as fh:
                    pickle.dump((G, D, Gs), fh, protocol=proto)
                manifest.append({"file": f, "format": "tf-pickle", "wrapper": "tf-network", "arch": arch,
                                 "expected": name + ".expected.bin", "ignored_tensors": tf_ignored})
                globals_ = pickle_globals(open(path(f), "rb").read())
                for need in (("dnnlib.tflib.network", "Network"), ("numpy.core.multiarray", "_reconstruct")):
                    assert need in globals_, (f, need, globals_)

    # hostile files (never loaded)
    w = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    evil = {"state_dict": OrderedDict([("w", w)]), "payload": Payload()}
    torch.save(evil, path("hostile", "os-system.pt"), pickle_module=pickle_module(FixturePickler))
    legacy_save(evil, path("hostile", "os-system-legacy.pt"))
    tf_like = dict([("version", 3), ("name", "D"), ("static_kwargs", {"resolution": 128}), ("components", {}),
                           ("build_module_src", PAYLOAD_SRC), ("build_func_name", "D_basic"),
                           ("variables", [("lod", np.float32(0.0)), ("evil", Payload())])])
    with open(path("hostile", "os-system.pkl"), "wb") as fh:
        FixturePickler(fh, 3).dump(tf_like)
    torch.save({"payload": Payload()}, path("hostile", "posix-system.pt"))
    for f, need in (("os-system.pkl", ("os", "system")),):
        assert need in pickle_globals(open(path("hostile", f), "rb").read())
    for f, need in (("os-system.pt", ("os", "system")), ("posix-system.pt", ("posix", "system"))):
        assert need in pickle_globals(zip_data_pkl(path("hostile", f)))
    assert ("os", "system") in legacy_globals(path("hostile", "os-system-legacy.pt"))

    with open(path("manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=2)
        fh.write("\n")
    print("wrote", len(manifest), "checkpoint entries to", path("manifest.json"))


# ----------------------------------------------------------------------------------------------
# inspection helpers (pickletools only: nothing is executed)


def pickle_globals(data, start=0):
    """(module, name) pairs of every GLOBAL / STACK_GLOBAL in the first pickle at data[start:]."""
    found, strings, memo, last = [], [], {}, None
    for op, arg, _ in pickletools.genops(io.BytesIO(data[start:])):
        if op.name == "GLOBAL":
            mod, nm = arg.split(" ", 1)
            found.append((mod, nm))
        elif op.name == "STACK_GLOBAL":
            found.append((strings[-2], strings[-1]))
        if op.name == "MEMOIZE":
            memo[len(memo)] = last
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = last
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            last = memo.get(int(arg))
            if isinstance(last, str):
                strings.append(last)
        elif isinstance(arg, str) and "UNICODE" in op.name:
            strings.append(arg)
            last = arg
        else:
            last = None
    return found


def pickle_opcodes(data):
    ops = OrderedDict()
    proto = None
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        ops[op.name] = ops.get(op.name, 0) + 1
        if op.name == "PROTO":
            proto = arg
    return proto, ops


def zip_data_pkl(p):
    with zipfile.ZipFile(p) as z:
        (n,) = [i for i in z.namelist() if i.endswith("/data.pkl")]
        return z.read(n)


def legacy_pickles(p):
    """Offsets and bytes of the five leading pickles of a legacy torch.save file (parsed, not run)."""
    raw = open(p, "rb").read()
    f = io.BytesIO(raw)
    out = []
    for _ in range(5):
        start = f.tell()
        for op, _, _ in pickletools.genops(f):
            if op.name == "STOP":
                break
        out.append((start, raw[start:f.tell()]))
    return raw, out


def legacy_globals(p):
    _, pk = legacy_pickles(p)
    return [g for _, d in pk for g in pickle_globals(d)]


# ----------------------------------------------------------------------------------------------


def close(a, b, what):
    a, b = a.double(), b.double()
    err = (a - b).abs().max().item()
    tol = 1e-6 * max(1.0, b.abs().max().item())
    assert a.shape == b.shape and err <= tol, "%s: max abs err %g (tol %g)" % (what, err, tol)


def verify():
    torch.manual_seed(0)
    manifest = json.load(open(path("manifest.json")))
    install_fake_dnnlib()
    expected = {}
    for e in manifest:
        expected.setdefault(e["expected"], oracle.read_tensors(path(e["expected"])))

    def check_resnet(name, sd, exp):
        c = RESNETS[name]
        m = ScaledResNet(c["block"], c["layers"], c["planes"], c["num_classes"], c["stem"])
        m.load_state_dict(sd, strict=True)
        got = resnet_expected(m.eval(), exp["x"])
        close(got["y"], exp["y"], name + " y")
        close(got["dx"], exp["dx"], name + " dx")

    sd18 = None
    for e in manifest:
        f, exp = e["file"], expected[e["expected"]]
        p = path(f)
        names = []
        if e["format"] in ("torch-zip", "torch-legacy"):
            # torch 1.13's weights_only unpickler rejects BINFLOAT (the optimizer's lr/betas/eps), so
            # the CNNDetection file is loaded unrestricted (it was written by this script).
            obj = torch.load(p, map_location="cpu", weights_only=e["wrapper"] != "model")
            if e["wrapper"] == "plain":
                sd = obj
            elif e["wrapper"] == "model":
                sd = obj["model"]
                assert obj["total_steps"] == 1234 and "optimizer" in obj
            elif e["wrapper"] == "discriminator":
                sd = obj["discriminator"]
            elif e["wrapper"] == "module-prefix":
                assert all(k.startswith("module.") for k in obj)
                sd = OrderedDict((k[len("module."):], v) for k, v in obj.items())
            names = list(obj if e["wrapper"] in ("plain", "module-prefix") else sd)
            if e["arch"]["kind"] == "resnet":
                name = "resnet18w8-cifar" if e["arch"]["depth"] == 18 else "resnet50w4"
                check_resnet(name, sd, exp)
                if name == "resnet18w8-cifar":
                    if sd18 is None:
                        sd18 = sd
                    else:
                        assert list(sd) == list(sd18) and all(torch.equal(sd[k], sd18[k]) for k in sd)
            else:
                name = "stylegan-d%d" % e["arch"]["resolution"]
                got = stylegan_forward64(name, sd, exp["x"])
                close(got["y"], exp["y"], name + " y")
                close(got["dx"], exp["dx"], name + " dx")
        elif e["format"] == "safetensors":
            header, st = read_safetensors(p)
            assert header["__metadata__"] == {"format": "pt"}
            assert (8 + struct.unpack("<Q", open(p, "rb").read(8))[0]) % 8 == 0
            assert st["fc.weight"][0] == "F16" and all(v[0] == "I64" for k, v in st.items() if "num_batches" in k)
            sd = OrderedDict((k, v.float() if dt == "F16" else v) for k, (dt, v) in st.items())
            names = list(sd)
            check_resnet("resnet18w8-cifar", sd, exp)
            assert sd18 is not None and set(sd) == set(sd18) and all(torch.equal(sd[k], sd18[k]) for k in sd)
        elif e["format"] == "tf-pickle":
            with open(p, "rb") as fh:
                G, D, Gs = pickle.load(fh)  # trusted: written by this script; the classes are stand-ins
            st = D._state
            assert st["name"] == "D" and st["build_func_name"] == "D_basic" and "os.system" in st["build_module_src"]
            assert isinstance(dict(st["variables"])["lod"], np.float32)
            names = [n for n, _ in st["variables"]]
            c = STYLEGAN["stylegan-d128"]
            sd = tf_to_genforce(c, st["variables"])
            gf = torch.load(path("stylegan-d128-genforce.pth"), weights_only=True)["discriminator"]
            assert all(torch.equal(sd[k], gf[k]) for k in sd)
            got = stylegan_forward64("stylegan-d128", sd, exp["x"])
            close(got["y"], exp["y"], f + " y")
            close(got["dx"], exp["dx"], f + " dx")
        assert set(e["ignored_tensors"]) <= set(names), (f, set(e["ignored_tensors"]) - set(names))
        print("OK %-40s %8d bytes  %d tensors" % (f, os.path.getsize(p), len(names)))
        print("   names:", ", ".join(names))
    report()


def report():
    print("\n--- expected files")
    for f in sorted(os.listdir(OUT)):
        if f.endswith(".expected.bin"):
            t = oracle.read_tensors(path(f))
            print("%-32s %8d bytes  %s" % (f, os.path.getsize(path(f)), {k: list(v.shape) for k, v in t.items()}))
            print("   y =", t["y"].flatten().tolist()[:10])
    print("\n--- pickles (pickletools.genops; nothing executed)")
    items = []
    for f in sorted(os.listdir(OUT)):
        if f.endswith(".pkl"):
            items.append((f, open(path(f), "rb").read()))
        elif f.endswith((".pt", ".pth")) and "legacy" not in f:
            items.append((f + ":data.pkl", zip_data_pkl(path(f))))
    for f in sorted(os.listdir(path("hostile"))):
        q = path("hostile", f)
        if f.endswith(".pkl"):
            items.append(("hostile/" + f, open(q, "rb").read()))
        elif "legacy" not in f:
            items.append(("hostile/" + f + ":data.pkl", zip_data_pkl(q)))
    for f, data in items:
        proto, ops = pickle_opcodes(data)
        print("%s: protocol %s, globals %s" % (f, proto, sorted(set(pickle_globals(data)))))
        print("   opcodes:", dict(ops))
    for f in ("resnet18w8-cifar-legacy.pt", "hostile/os-system-legacy.pt"):
        raw, pk = legacy_pickles(path(f))
        print("%s: %d bytes" % (f, len(raw)))
        for i, (start, d) in enumerate(pk):
            proto, ops = pickle_opcodes(d)
            extra = ""
            if i in (0, 1, 2, 4):
                assert not pickle_globals(d)
                if not f.startswith("hostile/"):  # never unpickle anything from hostile/
                    extra = repr(pickle.loads(d))[:120]  # plain ints / dict / list of str
            print("   pickle %d @%d len %d proto %s globals %s %s" % (i, start, len(d), proto, sorted(set(pickle_globals(d))), extra))
        print("   storage blocks start @%d" % (pk[-1][0] + len(pk[-1][1])))
    for f in sorted(os.listdir(OUT)):
        if f.endswith((".pt", ".pth")) and "legacy" not in f:
            with zipfile.ZipFile(path(f)) as z:
                infos = z.infolist()
                print("%s zip entries: %s ... (%d entries; compress types %s)" % (
                    f, [i.filename for i in infos[:3]] + [infos[-1].filename], len(infos), sorted({i.compress_type for i in infos})))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--verify", action="store_true", help="re-read every checkpoint and check it (no generation)")
    a = ap.parse_args()
    if a.verify:
        verify()
    else:
        generate()
