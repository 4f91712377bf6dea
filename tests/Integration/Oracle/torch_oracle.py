#!/usr/bin/python3
"""Test-time oracle: PyTorch (Debian's python3-torch 1.13 + python3-torchvision) computes what
ModelGuardian's engine must reproduce. Run by the C# tests as a child process, one request per
line on stdin, one JSON answer per line on stdout.

Request:  {"op": "...", "params": {...}, "inputs": "<file>", "outputs": "<file>"}
Answer:   {"ok": true} or {"ok": false, "error": "..."}

Tensor files (little-endian): uint32 count, then per tensor: uint16 name length, UTF-8 name,
uint8 rank, int32 dims[rank], float32 data (row-major).

For every op the oracle returns y = f(x) and dx = d(sum(y * g))/dx, where g is the request's
upstream gradient tensor "g" (ones when absent, i.e. the gradient of the sum)."""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torch.nn as nn
import torchvision
import torchvision.models.resnet as tvr

torch.set_num_threads(2)
torch.set_grad_enabled(True)


def read_tensors(path):
    out = {}
    with open(path, "rb") as f:
        (count,) = struct.unpack("<I", f.read(4))
        for _ in range(count):
            (n,) = struct.unpack("<H", f.read(2))
            name = f.read(n).decode("utf-8")
            (rank,) = struct.unpack("<B", f.read(1))
            dims = struct.unpack("<%di" % rank, f.read(4 * rank)) if rank else ()
            size = int(np.prod(dims)) if rank else 1
            data = np.frombuffer(f.read(4 * size), dtype="<f4").reshape(dims)
            out[name] = torch.from_numpy(data.copy())
    return out


def write_tensors(path, tensors):
    with open(path, "wb") as f:
        f.write(struct.pack("<I", len(tensors)))
        for name, t in tensors.items():
            a = t.detach().contiguous().numpy().astype("<f4")
            b = name.encode("utf-8")
            f.write(struct.pack("<H", len(b)))
            f.write(b)
            f.write(struct.pack("<B", a.ndim))
            f.write(struct.pack("<%di" % a.ndim, *a.shape))
            f.write(a.tobytes())


def mbstd(x, group):
    # StyleGAN v1 (TF): groups are n = g*M + m (reshape [G, M, ...]).
    n, c, h, w = x.shape
    g = min(group, n)
    y = x.reshape(g, -1, c, h, w)
    y = y - y.mean(dim=0)
    y = (y * y).mean(dim=0)
    y = torch.sqrt(y + 1e-8)
    y = y.mean(dim=[1, 2, 3])           # (M,)
    y = y.reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


def layer(p, t):
    kind = p["kind"]
    x = t["x"]
    if kind == "conv2d":
        return F.conv2d(x, t["w"], t.get("b"), stride=tuple(p["stride"]), padding=tuple(p["padding"]), groups=p["groups"])
    if kind == "linear":
        return F.linear(x, t["w"], t.get("b"))
    if kind == "max_pool2d":
        return F.max_pool2d(x, tuple(p["kernel"]), tuple(p["stride"]), tuple(p["padding"]))
    if kind == "avg_pool2d":
        return F.avg_pool2d(x, tuple(p["kernel"]), tuple(p["stride"]), tuple(p["padding"]), count_include_pad=p["count_include_pad"])
    if kind == "adaptive_avg_pool2d":
        return F.adaptive_avg_pool2d(x, tuple(p["size"]))
    if kind == "leaky_relu":
        return F.leaky_relu(x, p["slope"])
    if kind == "bias_leaky_relu":
        return F.leaky_relu(x + t["b"].reshape(1, -1, 1, 1), p["slope"])
    if kind == "channel_affine":
        return x * t["scale"].reshape(1, -1, 1, 1) + t["shift"].reshape(1, -1, 1, 1)
    if kind == "sigmoid":
        return torch.sigmoid(x)
    if kind == "softmax":
        return torch.softmax(x, dim=1)
    if kind == "interpolate":
        if p["mode"] == "nearest":
            return F.interpolate(x, size=tuple(p["size"]), mode="nearest")
        return F.interpolate(x, size=tuple(p["size"]), mode="bilinear", align_corners=False)
    if kind == "mbstd":
        return mbstd(x, p["group"])
    raise ValueError("unknown layer kind " + kind)


def load_state(m, t):
    """Every tensor of the request but x and g into m, strictly (num_batches_tracked aside)."""
    state = {k: v for k, v in t.items() if k not in ("x", "g")}
    missing, unexpected = m.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError("state dict mismatch: missing %s unexpected %s" % (missing, unexpected))


def resnet(p, t):
    ctor = {18: torchvision.models.resnet18, 34: torchvision.models.resnet34, 50: torchvision.models.resnet50}[p["depth"]]
    m = ctor(num_classes=p["outputs"]).to(torch.get_default_dtype())
    if p["stem"] == "cifar":
        m.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        m.maxpool = torch.nn.Identity()
    load_state(m, t)
    m.eval()
    return m(t["x"])


class ScaledResNet(tvr.ResNet):
    """torchvision's ResNet with scaled widths; same module names, so the same state-dict keys."""

    def __init__(self, block, layers, planes, num_classes, stem):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = planes[0]
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, planes[0], kernel_size=3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if stem == "cifar" else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(planes[3] * block.expansion, num_classes)
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)



def scaled_resnet(depth, width, outputs, stem):
    block, layers = {18: (tvr.BasicBlock, [2, 2, 2, 2]), 34: (tvr.BasicBlock, [3, 4, 6, 3]), 50: (tvr.Bottleneck, [3, 4, 6, 3])}[depth]
    return ScaledResNet(block, layers, [width, 2 * width, 4 * width, 8 * width], outputs, stem)


def resnet_train_grads(p, t):
    """A torchvision-named ResNet in training mode (batch statistics): y, the gradient of sum(y * g) for
    every parameter ("d" + name) and the running statistics after the forward ("rs:" + name)."""
    m = scaled_resnet(p["depth"], p["width"], p["outputs"], p["stem"]).to(torch.get_default_dtype())
    load_state(m, t)
    m.train()
    params = dict(m.named_parameters())
    for name in params:
        t[name] = params[name]
    p["params"] = list(params)
    y = m(t["x"])
    t["__extra"] = {"rs:" + k: v.detach().clone() for k, v in m.state_dict().items() if k.endswith("running_mean") or k.endswith("running_var")}
    return y


def stylegan_d(p, t):
    """StyleGAN v1 discriminator at lod 0 with genforce names."""
    res, base, fmax, group = p["resolution"], p["fmap_base"], p["fmap_max"], p["group"]
    nf = lambda r: min(base // r, fmax)
    lrelu = lambda v: F.leaky_relu(v, 0.2)
    sq2 = 2 ** 0.5

    def ws(name, gain):
        w = t[name + ".weight"]
        fan_in = w[0].numel()
        return w * (gain / fan_in ** 0.5)

    x = t["x"]
    x = lrelu(F.conv2d(x, ws("input0", sq2), t["input0.bias"]))
    idx, r = 0, res
    while r > 4:
        cin = nf(r)
        x = lrelu(F.conv2d(x, ws("layer%d" % idx, sq2), t["layer%d.bias" % idx], padding=1))
        k = torch.tensor([1.0, 2.0, 1.0])
        k = (k[:, None] * k[None, :]) / 16.0
        x = F.conv2d(x, k.reshape(1, 1, 3, 3).repeat(cin, 1, 1, 1), padding=1, groups=cin)
        w = ws("layer%d" % (idx + 1), sq2)
        b = t["layer%d.bias" % (idx + 1)]
        if r >= 128:
            w = F.pad(w, (1, 1, 1, 1))
            w = (w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]) * 0.25
            x = F.conv2d(x, w, stride=2, padding=1) + b.reshape(1, -1, 1, 1)
        else:
            x = F.avg_pool2d(F.conv2d(x, w, padding=1), 2) + b.reshape(1, -1, 1, 1)
        x = lrelu(x)
        idx += 2
        r //= 2
    x = mbstd(x, group)
    x = lrelu(F.conv2d(x, ws("layer%d" % idx, sq2), t["layer%d.bias" % idx], padding=1))
    x = x.reshape(x.shape[0], -1)
    x = lrelu(F.linear(x, ws("layer%d" % (idx + 1), sq2), t["layer%d.bias" % (idx + 1)]))
    return F.linear(x, ws("layer%d" % (idx + 2), 1.0), t["layer%d.bias" % (idx + 2)])


def stylegan_d_grads(p, t):
    """stylegan_d with the stored (unscaled) tensors named in p["params"] as leaves: their gradients come back as "d" + name."""
    for name in p["params"]:
        t[name] = t[name].clone().requires_grad_(True)
    return stylegan_d(p, t)


def pil_bicubic(p, t):
    """PIL's bicubic resampling of each channel as a 32-bit float ('F') image: no 8-bit rounding."""
    from PIL import Image
    x = t["x"].detach().numpy()
    h, w = p["size"]
    planes = [np.asarray(Image.fromarray(c.astype(np.float32), mode="F").resize((w, h), Image.BICUBIC)) for c in x]
    return torch.from_numpy(np.stack(planes)) + 0 * t["x"].sum()  # keep x in the graph; its gradient is not used


def input_contract(p, t):
    """A query brought to a network's input side by torchvision's functional transforms on a float tensor (0..255)."""
    import torchvision.transforms.functional as F
    from torchvision.transforms import InterpolationMode
    x = t["x"]
    if p["grey"]:
        x = (0.299 * x[0] + 0.587 * x[1] + 0.114 * x[2]).expand(3, -1, -1)
    side, bilinear = p["side"], InterpolationMode.BILINEAR
    if p["fit"] == "resize":
        x = F.resize(x, [side, side], interpolation=bilinear, antialias=False)
    elif p["fit"] == "pad":
        c = p["content"]
        if x.shape[-1] != c:
            x = F.resize(x, [c, c], interpolation=bilinear, antialias=False)
        m = (side - c) // 2
        x = F.pad(x, [m, m, m, m], fill=p["pad_value"])
    else:
        x = F.center_crop(F.resize(x, p["resize_side"], interpolation=bilinear, antialias=False), [side, side])
    return x + 0 * t["x"].sum()  # keep x in the graph; its gradient is not used


def param_grads(p, t):
    """A layer's output and the gradients of sum(y * g) for x and every tensor named in p["params"]."""
    for name in p["params"]:
        t[name] = t[name].clone().requires_grad_(True)
    kind = p["kind"]
    if kind == "batch_norm_train":
        rm, rv = t["running_mean"].clone(), t["running_var"].clone()
        y = F.batch_norm(t["x"], rm, rv, t["w"], t["b"], training=True, momentum=p["momentum"], eps=p["eps"])
        t["__extra"] = {"running_mean": rm, "running_var": rv}
        return y
    return layer(p, t)


def optim_step(p, t):
    """p["steps"] optimizer steps on w with gradients g0, g1, …; returns the new w (and x as a dummy graph input)."""
    w = t["w"].clone().requires_grad_(True)
    if p["kind"] == "sgd":
        opt = torch.optim.SGD([w], lr=p["lr"], momentum=p["momentum"], weight_decay=p["weight_decay"])
    else:
        opt = torch.optim.Adam([w], lr=p["lr"], betas=(p["beta1"], p["beta2"]), eps=p["eps"], weight_decay=p["weight_decay"])
    for k in range(p["steps"]):
        w.grad = t["g%d" % k].clone()
        opt.step()
    t["__extra"] = {"w_new": w.detach()}
    return t["x"] * 1.0


class GreyGenerator(nn.Module):
    """The attacks' generator body, nearest + conv family, with ModelGuardian's parameter names: noise (N, 64) ->
    dense -> 8x8 -> BN, leaky-ReLU -> (nearest x2, conv 3x3, BN, leaky-ReLU) x 2 -> conv 3x3 to one raw grey plane."""

    def __init__(self, width):
        super().__init__()
        c0, c1, c2 = 2 * width, width, max(8, width // 2)
        self.c0 = c0
        self.fc = nn.Linear(64, c0 * 64)
        self.bn0 = nn.BatchNorm2d(c0)
        self.up1 = nn.Conv2d(c0, c1, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.up2 = nn.Conv2d(c1, c2, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.to_grey = nn.Conv2d(c2, 1, 3, 1, 1, bias=True)

    def forward(self, z):
        h = F.leaky_relu(self.bn0(self.fc(z.reshape(z.shape[0], -1)).reshape(-1, self.c0, 8, 8)), 0.2)
        h = F.leaky_relu(self.bn1(self.up1(F.interpolate(h, scale_factor=2, mode="nearest"))), 0.2)
        h = F.leaky_relu(self.bn2(self.up2(F.interpolate(h, scale_factor=2, mode="nearest"))), 0.2)
        return self.to_grey(h)


def load_prefixed(m, t, prefix):
    state = {k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)}
    missing, unexpected = m.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError("state dict mismatch (%s): missing %s unexpected %s" % (prefix, missing, unexpected))


# ---- one attack iteration: the pieces every attack op shares ---------------------------------------------------------

def attack_generator(p, t):
    g = GreyGenerator(p["generator_width"]).to(torch.get_default_dtype())
    load_prefixed(g, t, "g:")
    g.train()
    return g


def attack_resnet(t, prefix, width, outputs):
    """A CIFAR-stem ResNet-18 (a student, or DFMS-HL's discriminator) from the request's tensors under prefix, training mode."""
    m = scaled_resnet(18, width, outputs, "cifar").to(torch.get_default_dtype())
    load_prefixed(m, t, prefix)
    m.train()
    return m


def student_sgd(p, m):
    return torch.optim.SGD(m.parameters(), lr=p["student_lr"], momentum=0.9, weight_decay=5e-4)


def unit_to_input(p):
    """The map from images in 0..1 to a network's input: x / std - mean / std per channel."""
    mean = torch.tensor(p["mean"]).reshape(1, 3, 1, 1)
    std = torch.tensor(p["std"]).reshape(1, 3, 1, 1)
    return lambda x: x / std - mean / std


def grey_normalise(raw):
    """The grey head's batch-norm over the whole batch, no affine, biased variance, eps 1e-5."""
    return (raw - raw.mean()) / torch.sqrt(raw.var(unbiased=False) + 1e-5)


def grey_images(a, shift):
    """(tanh(a + shift) + 1) / 2, one plane repeated to three channels: (N, 3, 32, 32)."""
    return ((torch.tanh(a + shift) + 1) / 2).reshape(-1, 1, 32, 32).repeat(1, 3, 1, 1)


def reconstructed_logits(answers):
    """DFME's logits from probabilities: log p - mean_k log p."""
    lp = torch.log(torch.clamp(answers, min=1e-30))
    return lp - lp.mean(dim=1, keepdim=True)


def gradients(prefix, m):
    return {prefix + name: q.grad.detach().clone() for name, q in m.named_parameters()}


def set_grads(m, flat):
    """Overwrites m's parameter gradients, in named_parameters order, from one flat tensor. Adam's first step is
    lr * sign(g): where float32 rounding flips a tiny gradient's sign the step would differ by 2 lr and everything after
    would follow, so the ops step on the caller's gradient (checked against their own)."""
    flat = flat.reshape(-1)
    offset = 0
    for name, q in m.named_parameters():
        q.grad = flat[offset:offset + q.numel()].reshape(q.shape).clone()
        offset += q.numel()
    if offset != flat.numel():
        raise ValueError("%d gradient values for %d parameters" % (flat.numel(), offset))


def state(prefix, m):
    return {prefix + k: v.detach().clone() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}


def zeroth_order_iteration(p, t):
    """One DFME (p["loss"] "l1") or MAZE ("kl") iteration as the references run it (replay off): the grey head,
    forward differences before the tanh on the student in eval mode, the generator's Adam step on minus the mean
    disagreement, then the student's SGD steps, each on a fresh batch. The noise, directions, victim answers, zeroth-order
    slopes and generator gradient come from the request (what the C# attack drew, got and computed); this op's own
    losses and gradients are returned for comparison."""
    g = attack_generator(p, t)
    s = attack_resnet(t, "s:", p["student_width"], p["classes"])
    norm = unit_to_input(p)
    n, m, eps, shift = p["n"], p["m"], p["epsilon"], p["shift"]
    d = 32 * 32

    def disagreement(logits, answers):
        """Per query: DFME's mean_k |logits - reconstructed| or MAZE's KL(answers || softmax(logits))."""
        if p["loss"] == "l1":
            return (logits - reconstructed_logits(answers)).abs().mean(dim=1)
        terms = answers * (torch.log(torch.clamp(answers, min=1e-300)) - F.log_softmax(logits, dim=1))
        return torch.where(answers > 0, terms, torch.zeros_like(terms)).sum(dim=1)

    gopt = torch.optim.Adam(g.parameters(), lr=p["generator_lr"])
    sopt = student_sgd(p, s)
    a = grey_normalise(g(t["z1"]))
    u = t["u"].reshape(n, m, d)
    with torch.no_grad():
        base = a.detach().reshape(n, 1, d)
        points = torch.cat([base, base + eps * u], dim=1).reshape(n * (m + 1), d)
        x1 = grey_images(points, shift)
        s.eval()
        losses = disagreement(s(norm(x1)), t["answers1"]).reshape(n, m + 1)
        # The estimate divides loss differences by eps, which amplifies the caller's float32 rounding: the caller's own
        # slopes (L(x + eps u) - L(x)) / eps, taken in double before rounding and checked against ours, are used instead.
        slopes = (losses[:, 1:] - losses[:, :1]) / eps
        ghat = (d / m) * (t["caller_slopes"].reshape(n, m).unsqueeze(2) * u).sum(dim=1)
    a.reshape(n, d).backward(-ghat / n)
    extra = {"images1": x1, "losses": losses.reshape(-1), "slopes": slopes.reshape(-1)}
    extra.update(gradients("gg:", g))
    set_grads(g, t["caller_generator_gradient"])
    gopt.step()
    s.train()
    for step in range(p["student_steps"]):
        with torch.no_grad():
            x2 = grey_images(grey_normalise(g(t["z2_%d" % step])), shift)
        sopt.zero_grad()
        # DFME: L1 over every logit; MAZE: KL summed over classes, averaged over the batch.
        disagreement(s(norm(x2)), t["answers2_%d" % step]).mean().backward()
        sopt.step()
        extra["images2_%d" % step] = x2
    extra.update(state("g:", g))
    extra.update(state("s:", s))
    t["__extra"] = extra
    return t["x"] * 1.0


def two_student_iteration(p, t):
    """One DisGUIDE (or Dual Student, diversity 0) iteration as the reference runs it (replay off): the generator,
    white-box through both students in training mode, descends -disagreement + w/2 (diversity(a) + diversity(b)), with
    disagreement the batch mean of sum_k |softmax(a) - softmax(b)| and diversity sum_k pbar log pbar; then each
    student's SGD steps on fresh batches, L1 to the victim's reconstructed logits."""
    g = attack_generator(p, t)
    prefixes = ("s:", "s2:")
    students = [attack_resnet(t, prefix, p["student_width"], p["classes"]) for prefix in prefixes]
    norm = unit_to_input(p)
    shift, w = p["shift"], p["diversity"] / 2

    def diversity(logits):
        pbar = torch.softmax(logits, dim=1).mean(dim=0)
        return (pbar * torch.log(pbar)).sum()

    gopt = torch.optim.Adam(g.parameters(), lr=p["generator_lr"])
    opts = [student_sgd(p, st) for st in students]
    x = grey_images(grey_normalise(g(t["z1"])), shift)
    la, lb = (st(norm(x)) for st in students)
    disagreement = (torch.softmax(la, dim=1) - torch.softmax(lb, dim=1)).abs().sum(dim=1).mean()
    (-disagreement + w * (diversity(la) + diversity(lb))).backward()
    extra = gradients("gg:", g)
    set_grads(g, t["caller_generator_gradient"])
    gopt.step()
    for step in range(p["student_steps"]):
        with torch.no_grad():
            x2 = grey_images(grey_normalise(g(t["z2_%d" % step])), shift)
        target = reconstructed_logits(t["answers2_%d" % step])
        for st, opt in zip(students, opts):
            opt.zero_grad()
            (st(norm(x2)) - target).abs().mean().backward()
            opt.step()
        extra["images2_%d" % step] = x2
    extra.update(state("g:", g))
    for prefix, st in zip(prefixes, students):
        extra.update(state(prefix, st))
    t["__extra"] = extra
    return t["x"] * 1.0


def dast_iteration(p, t):
    """One DaST iteration (replay off): the class code written into the first K noise values, one query batch; the
    generator, white-box through the student in training mode, descends exp(-d) + 0.2 CE(student, code), with d the batch
    mean of sum_k (softmax_k - answer_k)^2; the student then descends d on the same images."""
    g = attack_generator(p, t)
    s = attack_resnet(t, "s:", p["student_width"], p["classes"])
    norm = unit_to_input(p)
    k = p["classes"]
    labels = t["labels"].long()
    z = t["z"].clone()
    z[:, :k] = F.one_hot(labels, k).to(z.dtype)
    gopt = torch.optim.Adam(g.parameters(), lr=p["generator_lr"])
    sopt = student_sgd(p, s)
    x = grey_images(grey_normalise(g(z)), p["shift"])
    answers = t["answers"]

    def distance(logits):
        return ((torch.softmax(logits, dim=1) - answers) ** 2).sum(dim=1).mean()

    logits = s(norm(x))
    (torch.exp(-distance(logits)) + 0.2 * F.cross_entropy(logits, labels)).backward()
    extra = {"images": x.detach()}
    extra.update(gradients("gg:", g))
    set_grads(g, t["caller_generator_gradient"])
    gopt.step()
    sopt.zero_grad()
    distance(s(norm(x.detach()))).backward()
    sopt.step()
    extra.update(state("g:", g))
    extra.update(state("s:", s))
    t["__extra"] = extra
    return t["x"] * 1.0


def dfms_iteration(p, t):
    """One DFMS-HL iteration after pre-training (replay off): a discriminator step (proxy images real, generator images
    fake, BCE with logits, Adam beta1 0.5), a generator step (non-saturating BCE through the discriminator plus class
    diversity through the student, both in training mode), then one student step, cross-entropy on the victim's top-1
    labels."""
    g = attack_generator(p, t)
    dnet = attack_resnet(t, "d:", 4, 1)
    s = attack_resnet(t, "s:", p["student_width"], p["classes"])
    norm = unit_to_input(p)
    shift = p["shift"]
    bce = F.binary_cross_entropy_with_logits
    gopt = torch.optim.Adam(g.parameters(), lr=p["generator_lr"])
    dopt = torch.optim.Adam(dnet.parameters(), lr=p["generator_lr"], betas=(0.5, 0.999))
    sopt = student_sgd(p, s)
    n = t["proxy"].shape[0]
    bce(dnet(norm(t["proxy"])).reshape(-1), torch.ones(n)).backward()
    with torch.no_grad():
        fake = grey_images(grey_normalise(g(t["z_fake"])), shift)
    bce(dnet(norm(fake)).reshape(-1), torch.zeros(n)).backward()
    extra = gradients("dg:", dnet)
    set_grads(dnet, t["caller_discriminator_gradient"])
    dopt.step()
    dopt.zero_grad()
    x = grey_images(grey_normalise(g(t["z_gen"])), shift)
    adv = bce(dnet(norm(x)).reshape(-1), torch.ones(n))
    pbar = torch.softmax(s(norm(x)), dim=1).mean(dim=0)
    (adv + p["diversity"] * (pbar * torch.log(pbar)).sum()).backward()
    extra.update(gradients("gg:", g))
    set_grads(g, t["caller_generator_gradient"])
    gopt.step()
    sopt.zero_grad()
    with torch.no_grad():
        x2 = grey_images(grey_normalise(g(t["z_student"])), shift)
    F.cross_entropy(s(norm(x2)), t["answers"].argmax(dim=1)).backward()
    sopt.step()
    extra["images"] = x2
    for prefix, m in (("g:", g), ("d:", dnet), ("s:", s)):
        extra.update(state(prefix, m))
    t["__extra"] = extra
    return t["x"] * 1.0


OPS = {"layer": layer, "resnet": resnet, "stylegan_d": stylegan_d, "pil_bicubic": pil_bicubic,
    "input_contract": input_contract, "param_grads": param_grads, "optim_step": optim_step,
       "resnet_train_grads": resnet_train_grads, "stylegan_d_grads": stylegan_d_grads,
       "zeroth_order_iteration": zeroth_order_iteration, "two_student_iteration": two_student_iteration,
       "dast_iteration": dast_iteration, "dfms_iteration": dfms_iteration}


def handle(req):
    t = read_tensors(req["inputs"])
    if req.get("params", {}).get("float64"):
        t = {k: v.double() for k, v in t.items()}
        torch.set_default_dtype(torch.float64)
    else:
        torch.set_default_dtype(torch.float32)
    x = t["x"].clone().requires_grad_(True)
    t["x"] = x
    y = OPS[req["op"]](req.get("params", {}), t)
    g = t.get("g")
    if g is None:
        g = torch.ones_like(y)
    names = req.get("params", {}).get("params", []) if req["op"] in ("param_grads", "resnet_train_grads", "stylegan_d_grads") else []
    wrt = [x] + [t[n] for n in names]
    grads = torch.autograd.grad((y * g.reshape(y.shape)).sum(), wrt, allow_unused=True)
    out = {"y": y.float()}
    for name, tensor, grad in zip(["x"] + names, wrt, grads):
        out["d" + name] = (torch.zeros_like(tensor) if grad is None else grad).float()
    for name, tensor in t.get("__extra", {}).items():
        out[name] = tensor.float()
    write_tensors(req["outputs"], out)


def main():
    print(json.dumps({"ok": True, "torch": torch.__version__, "torchvision": torchvision.__version__}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            handle(json.loads(line))
            print(json.dumps({"ok": True}), flush=True)
        except Exception as e:  # the test shows the oracle's error verbatim
            print(json.dumps({"ok": False, "error": "%s: %s" % (type(e).__name__, e)}), flush=True)


if __name__ == "__main__":
    main()
