#!/usr/bin/env bash
# Re-creates every built-in default model in this folder, seeded, on the CPU backend (about 10
# minutes on 2 cores). Needs Debian's dataset-fashion-mnist, python3-skimage and opencv-doc
# (the real images). Run from the repository root: bash weights/default/make-defaults.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
mg() { dotnet run -c Release --project tools/mg -- "$@"; }
out=weights/default
# The transformation model: a seeded random StyleGAN D at 32² (no trained D exists offline; see README).
mg train init --arch stylegan-d --resolution 32 --fmap-base 512 --fmap-max 32 --seed 11 -o $out/transform.mgw
# The victim: ResNet-18 (CIFAR stem, width 16) on Fashion-MNIST as 3×32×32.
mg train classifier --data fashion-mnist --limit 12000 --epochs 2 --width 16 --lr 1e-3 --seed 1 --backend cpu -o $out/victim.mgw
# Three sub-detectors, each on one generator family (paper Table VI: one synthetic source per detector).
seed=21
for family in transposed nearest bilinear; do
  mg train detector --real both --fake generator:$family --transform $out/transform.mgw --count 2000 \
     --width 8 --epochs 6 --lr 1e-3 --seed $seed --backend cpu -o $out/detector-$family.mgw
  seed=$((seed + 1))
done
# Trained generators (mg train gan), one per family, and detectors on their samples: not switched on
# yet. Measured 1.2–2.0 s per iteration at these sizes on 2 shared cores (README), so 1,000 iterations
# add about 20–35 minutes per family. To switch on, uncomment, and point the detectors' --fake at
# generator-file:$out/gan-$family/generator.mgw (or train a second detector per family beside these).
# seed=31
# for family in transposed nearest bilinear; do
#   mg train gan --family $family --iterations 1000 --batch 32 --width 32 --d-fmap-base 512 --d-fmap-max 32 \
#      --real photos --seed $seed --backend cpu -o $out/gan-$family/
#   mg train detector --real both --fake generator-file:$out/gan-$family/generator.mgw --transform $out/transform.mgw \
#      --count 2000 --width 8 --epochs 6 --lr 1e-3 --seed $((seed + 10)) --backend cpu -o $out/detector-gan-$family.mgw
#   seed=$((seed + 1))
# done
# The benign client's images for `mg demo` on a machine without the dataset package: the first
# 1,000 Fashion-MNIST test images and labels, as IDX files (headers rewritten for 1,000 items).
src=/usr/share/datasets/fashion-mnist
mkdir -p $out/fashion-mnist-demo
tmp=$(mktemp -d)
gzip -dc $src/t10k-images-idx3-ubyte.gz > $tmp/images
gzip -dc $src/t10k-labels-idx1-ubyte.gz > $tmp/labels
{ printf '\x00\x00\x08\x03\x00\x00\x03\xe8\x00\x00\x00\x1c\x00\x00\x00\x1c'
  dd if=$tmp/images iflag=skip_bytes,count_bytes skip=16 count=784000 bs=64K status=none; } | gzip -9n > $out/fashion-mnist-demo/t10k-images-idx3-ubyte.gz
{ printf '\x00\x00\x08\x01\x00\x00\x03\xe8'
  dd if=$tmp/labels iflag=skip_bytes,count_bytes skip=8 count=1000 bs=64K status=none; } | gzip -9n > $out/fashion-mnist-demo/t10k-labels-idx1-ubyte.gz
rm -r $tmp
