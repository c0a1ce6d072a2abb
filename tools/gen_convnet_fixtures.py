#!/usr/bin/env python3
"""Reference fixtures for the CNN / Swin image towers (tests/fixtures/convnets/<case>/).

Builds tiny random torchvision and timm models (ResNet bottleneck + basic, MobileNetV2,
EfficientNet-B0 (torchvision and timm, TF-"same"-padding variant included), EfficientNet-Lite0,
Swin-T (torchvision and timm)), perturbs every parameter away from its initial value
(weights += 0.1*randn, norm weights ~ N(1, .3)), gives every BatchNorm random running
statistics (mean ~ N(0, .2), var ~ U(.5, 1.5), num_batches_tracked = 3), and saves, per case:
  - the checkpoint as the library / a user writes it: torchvision: `model.pth`
    (torch.save(model.state_dict()), zip format; tv_resnet_basic in the legacy pickle format),
    timm: `model.safetensors` (safetensors.torch.save_file(model.state_dict()), int64 num_batches_tracked kept),
  - arch.json: source, name, constructor kwargs, image_size [H, W], bn_momentum, bn_eps,
  - reference.safetensors (f32 unless noted; the outputs computed in float64 from the f32 weights
    and pixels, so they are exact up to the final rounding and f32 implementations are measured
    against the truth, not against PyTorch's own f32 rounding):
      pixels [N, 3, H, W]       random normal input; N = 3 for the CNNs, 2 for Swin (SWIN_BATCH)
      eval_pooled [N, C]        pooled features before the classifier, eval mode
      eval_logits [N, 10]       logits, eval mode
      train_pooled [N, C]       the same after model.train(), one forward (BN batch statistics)
      after_train.<bn>.running_mean / .running_var
                                every BatchNorm's running stats after that one train forward
                                (keys as in the checkpoint).
Dropout and stochastic depth / drop path are 0, so train mode is deterministic.

Run by hand with the versions in tools/requirements.txt:  python3 tools/gen_convnet_fixtures.py [CASE ...]
(no argument: every case; otherwise only the named ones, e.g. `tv_swin_t timm_swin_tiny`. Every case reseeds
torch with 0 before it builds its model, so a case's files do not depend on which other cases run.)
"""
import copy
import json
import os
import shutil
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "convnets")
NUM_CLASSES = 10
BATCH = 3
# Swin: embed_dim 8 -> stage widths 8, 16, 32, 64 (num_heads [1, 2, 2, 4]: head dims 8, 8, 16, 16); with 16 each
# Swin case was about 2.8 MB, most of it weights. Two reference images (the pixels dominate the reference file).
SWIN_EMBED_DIM = 8
SWIN_BATCH = 2
torch.manual_seed(0)

NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)


def perturb(model):
    """Moves every parameter away from its init: weights get noise, norm weights become ~N(1, .3);
    BatchNorm buffers get random non-trivial running statistics."""
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if isinstance(module, NORMS) and name == "weight":
                    p.copy_(1.0 + 0.3 * torch.randn_like(p))
                else:
                    p.add_(0.1 * torch.randn_like(p))
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.copy_(0.2 * torch.randn_like(module.running_mean))
                module.running_var.copy_(0.5 + torch.rand_like(module.running_var))
                module.num_batches_tracked.fill_(3)
    model.eval()
    return model


def fresh(name):
    path = os.path.join(OUT, name)
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def save_ref(path, tensors):
    save_file({k: v.detach().contiguous().float() if v.is_floating_point() else v.contiguous().to(torch.int64) for k, v in tensors.items()}, os.path.join(path, "reference.safetensors"))


def batch_norms(model):
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def bn_args(model):
    """The (momentum, eps) shared by every BatchNorm of the model (None, None without any)."""
    args = {(m.momentum, m.eps) for _, m in batch_norms(model)}
    assert len(args) <= 1, args
    return args.pop() if args else (None, None)


def save_arch(path, model, arch, image_size):
    momentum, eps = bn_args(model)
    arch = dict(arch, image_size=list(image_size), bn_momentum=momentum, bn_eps=eps)
    with open(os.path.join(path, "arch.json"), "w") as f:
        json.dump(arch, f, indent=1)
        f.write("\n")


def save_weights(path, model, kind):
    sd = model.state_dict()
    if kind == "safetensors":
        save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(path, "model.safetensors"))
    elif kind == "legacy":
        torch.save(sd, os.path.join(path, "model.pth"), _use_new_zipfile_serialization=False)
    else:
        torch.save(sd, os.path.join(path, "model.pth"))


def load_weights(path, kind):
    if kind == "safetensors":
        from safetensors.torch import load_file
        return load_file(os.path.join(path, "model.safetensors"))
    return torch.load(os.path.join(path, "model.pth"), weights_only=True)


def run_case(name, build, arch, image_size, pooled_fn, logits_fn, kind="pth", batch=BATCH):
    """Builds, perturbs and saves a model, checks that the saved file loads back (strict) into a
    freshly built one with the same outputs, then writes the eval / train references."""
    torch.manual_seed(0)
    path = fresh(name)
    model = perturb(build())
    save_weights(path, model, kind)
    save_arch(path, model, arch, image_size)
    x = torch.randn(batch, 3, *image_size)
    sd_keys = set(model.state_dict())
    with torch.no_grad():
        model.eval()
        pooled32 = pooled_fn(model, x)
        assert torch.allclose(logits_fn(model, pooled32), model(x), atol=1e-5, rtol=1e-4), name
        reloaded = build()
        reloaded.load_state_dict(load_weights(path, kind), strict=True)
        reloaded.eval()
        assert torch.equal(pooled_fn(reloaded, x), pooled32), name
        # The references: the same weights and pixels in float64.
        exact = copy.deepcopy(model).double()
        eval_pooled = pooled_fn(exact, x.double())
        eval_logits = logits_fn(exact, eval_pooled)
        assert torch.allclose(eval_pooled.float(), pooled32, atol=1e-4, rtol=1e-3), name
        exact.train()
        train_pooled = pooled_fn(exact, x.double())
    ref = dict(pixels=x, eval_pooled=eval_pooled, eval_logits=eval_logits, train_pooled=train_pooled)
    for bn_name, bn in batch_norms(exact):
        for stat in ("running_mean", "running_var"):
            key = f"{bn_name}.{stat}"
            assert key in sd_keys, key
            ref[f"after_train.{key}"] = getattr(bn, stat)
    save_ref(path, ref)
    print(f"{name}: pooled {tuple(eval_pooled.shape)} mean|eval| {eval_pooled.abs().mean():.3g} mean|train| {train_pooled.abs().mean():.3g} "
          f"logits std {eval_logits.std():.3g}, {len(sd_keys)} keys, {len(batch_norms(model))} BNs")


# ---------------------------------------------------------------- torchvision

def tv_pooled_via(linear_attr):
    """Pooled features = the input of the final Linear (dropout is 0), captured with a pre-hook."""
    def pooled(model, x):
        linear = model.get_submodule(linear_attr)
        seen = []
        handle = linear.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
        try:
            model(x)
        finally:
            handle.remove()
        return seen[0]
    return pooled


def tv_logits_via(linear_attr):
    return lambda model, pooled: model.get_submodule(linear_attr)(pooled)


def tiny_resnet(block, layers, width, num_classes):
    """torchvision's ResNet with a base width instead of the hard-coded 64: stem = width,
    stage planes = width * [1, 2, 4, 8]; torchvision's own blocks and _make_layer, same module names."""
    from torchvision.models.resnet import ResNet

    class TinyResNet(ResNet):
        def __init__(self):
            nn.Module.__init__(self)
            self._norm_layer = nn.BatchNorm2d
            self.inplanes = width
            self.dilation = 1
            self.groups = 1
            self.base_width = 64  # BasicBlock requires 64; Bottleneck's inner width = planes * base_width / 64
            self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(self.inplanes)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(block, width, layers[0])
            self.layer2 = self._make_layer(block, width * 2, layers[1], stride=2)
            self.layer3 = self._make_layer(block, width * 4, layers[2], stride=2)
            self.layer4 = self._make_layer(block, width * 8, layers[3], stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(width * 8 * block.expansion, num_classes)
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)

    return TinyResNet()


def tv_resnet_bottleneck():
    from torchvision.models.resnet import Bottleneck

    layers, width = [1, 2, 1, 1], 8
    arch = dict(source="torchvision", name="resnet", block="bottleneck", width=width, layers=layers, num_classes=NUM_CLASSES)
    run_case("tv_resnet_bottleneck", lambda: tiny_resnet(Bottleneck, layers, width, NUM_CLASSES), arch, (64, 64),
             tv_pooled_via("fc"), tv_logits_via("fc"))


def tv_resnet_basic():
    from torchvision.models.resnet import BasicBlock

    layers, width = [1, 1, 1, 1], 8
    arch = dict(source="torchvision", name="resnet", block="basic", width=width, layers=layers, num_classes=NUM_CLASSES,
                weights_format="legacy_pickle")
    run_case("tv_resnet_basic", lambda: tiny_resnet(BasicBlock, layers, width, NUM_CLASSES), arch, (48, 40),
             tv_pooled_via("fc"), tv_logits_via("fc"), kind="legacy")


def tv_mobilenet_v2():
    from torchvision.models import mobilenet_v2

    kwargs = dict(width_mult=0.25, round_nearest=8, dropout=0.0, num_classes=NUM_CLASSES)
    # last_channel = _make_divisible(1280 * max(1.0, width_mult), 8): never scaled below 1280.
    arch = dict(source="torchvision", name="mobilenet_v2", **kwargs, last_channel=mobilenet_v2(**kwargs).last_channel)
    run_case("tv_mobilenet_v2", lambda: mobilenet_v2(**kwargs), arch, (64, 64),
             tv_pooled_via("classifier.1"), tv_logits_via("classifier.1"))


def tv_efficientnet_b0():
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    def build():
        setting, last_channel = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
        return EfficientNet(setting, dropout=0.0, stochastic_depth_prob=0.0, num_classes=NUM_CLASSES, last_channel=last_channel)

    arch = dict(source="torchvision", name="efficientnet_b0", width_mult=0.25, depth_mult=0.25, dropout=0.0,
                stochastic_depth_prob=0.0, num_classes=NUM_CLASSES, last_channel=build().classifier[1].in_features)
    run_case("tv_efficientnet_b0", build, arch, (64, 64), tv_pooled_via("classifier.1"), tv_logits_via("classifier.1"))


def tv_swin_t():
    from torchvision.models.swin_transformer import SwinTransformer

    kwargs = dict(patch_size=[4, 4], embed_dim=SWIN_EMBED_DIM, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], window_size=[7, 7],
                  stochastic_depth_prob=0.0, num_classes=NUM_CLASSES)
    arch = dict(source="torchvision", name="swin_transformer", **kwargs, mlp_ratio=4.0, norm_eps=1e-5)
    run_case("tv_swin_t", lambda: SwinTransformer(**kwargs), arch, (112, 112), tv_pooled_via("head"), tv_logits_via("head"),
             batch=SWIN_BATCH)


# ---------------------------------------------------------------- timm

def timm_pooled(model, x):
    return model.forward_head(model.forward_features(x), pre_logits=True)


def timm_logits(model, pooled):
    return model.get_classifier()(pooled)


def timm_effnet(case, variant, gen, image_size, **extra):
    """timm's efficientnet_b0 / efficientnet_lite0 entry points pin channel_multiplier=depth_multiplier=1.0
    (create_model(..., channel_multiplier=...) raises 'multiple values'), so the generator is called directly."""
    import timm.models.efficientnet as eff

    kwargs = dict(channel_multiplier=0.25, depth_multiplier=0.25, num_classes=NUM_CLASSES, drop_rate=0.0, drop_path_rate=0.0, **extra)

    def build():
        return getattr(eff, gen)(variant, pretrained=False, **kwargs)

    probe = build()
    arch = dict(source="timm", name=variant, constructor=f"timm.models.efficientnet.{gen}", **kwargs,
                num_features=probe.num_features, stem_size=probe.conv_stem.out_channels)
    run_case(case, build, arch, image_size, timm_pooled, timm_logits, kind="safetensors")


def timm_efficientnet_b0():
    timm_effnet("timm_efficientnet_b0", "efficientnet_b0", "_gen_efficientnet", (64, 64))


def timm_tf_efficientnet_b0():
    # bn_eps / pad_type: what timm.models.efficientnet.tf_efficientnet_b0 adds on top of _gen_efficientnet.
    timm_effnet("timm_tf_efficientnet_b0", "tf_efficientnet_b0", "_gen_efficientnet", (61, 53), bn_eps=1e-3, pad_type="same")


def timm_efficientnet_lite0():
    timm_effnet("timm_efficientnet_lite0", "efficientnet_lite0", "_gen_efficientnet_lite", (64, 64))


def timm_swin_tiny():
    import timm

    kwargs = dict(embed_dim=SWIN_EMBED_DIM, depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4], img_size=112, num_classes=NUM_CLASSES,
                  drop_path_rate=0.0)

    def build():
        return timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, **kwargs)

    probe = build()
    # timm clamps a stage's window to its resolution (and drops the shift there): stage 4 (4x4) gets a 4x4 window.
    arch = dict(source="timm", name="swin_tiny_patch4_window7_224", **kwargs, patch_size=4, window_size=7, mlp_ratio=4.0, norm_eps=1e-5,
                stage_window_sizes=[list(stage.blocks[0].window_size) for stage in probe.layers],
                stage_shift_sizes=[[list(b.shift_size) for b in stage.blocks] for stage in probe.layers])
    run_case("timm_swin_tiny", build, arch, (112, 112), timm_pooled, timm_logits, kind="safetensors", batch=SWIN_BATCH)


CASES = [tv_resnet_bottleneck, tv_resnet_basic, tv_mobilenet_v2, tv_efficientnet_b0, timm_efficientnet_b0,
         timm_tf_efficientnet_b0, timm_efficientnet_lite0, tv_swin_t, timm_swin_tiny]

if __name__ == "__main__":
    by_name = {case.__name__: case for case in CASES}
    unknown = [name for name in sys.argv[1:] if name not in by_name]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; known: {list(by_name)}")
    for case in [by_name[name] for name in sys.argv[1:]] if sys.argv[1:] else CASES:
        case()
    print("wrote", os.path.abspath(OUT))
