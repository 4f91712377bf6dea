#!/usr/bin/env bash
# Re-creates every built-in default model in this folder, seeded, on the CPU backend (about 40
# minutes on 2 cores). Needs Debian's dataset-fashion-mnist, python3-skimage and opencv-doc
# (the real images). Run from the repository root: bash weights/default/make-defaults.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
mg() { dotnet run -c Release --project tools/mg -- "$@"; }
out=weights/default
# Five GANs, one per up-sampling family, each a generator against a trainable StyleGAN D on real photo
# crops (about 4–7 minutes each here). The first three generators are the detectors' synthetic sources; the
# nearest-family GAN's discriminator, trained on real photos, is the transformation model.
seed=31
# The last two families are never shown to a detector: they are the evaluation's unseen generators.
for family in nearest transposed bilinear transposed-blur pixel-shuffle; do
  mg train gan --family $family --iterations 500 --batch 32 --width 32 --d-fmap-base 512 --d-fmap-max 32 \
     --real photos --seed $seed --backend cpu -o $out/gan-$family/
  seed=$((seed + 1))
done
cp $out/gan-nearest/discriminator.mgw $out/transform.mgw
# The victim: ResNet-18 (CIFAR stem, width 16) on Fashion-MNIST as 3×32×32.
mg train classifier --data fashion-mnist --limit 12000 --epochs 2 --width 16 --lr 1e-3 --seed 1 --backend cpu -o $out/victim.mgw
# Adaptive Misinformation's misinformation model (a baseline defence of mg eval): the victim's architecture,
# trained to put as little probability as it can on the true class.
mg train classifier --data fashion-mnist --objective misinformation --limit 12000 --epochs 1 --width 16 --lr 1e-3 --seed 2 \
   --backend cpu -o $out/misinformation.mgw
# SEAT's similarity encoder (a baseline defence of mg eval): trained adversarially on the same images, δ set at the
# 1e-5 quantile of pair distances over the next 2,000 training images and folded into its last layer (δ = 1).
mg train seat-encoder --limit 12000 --epochs 1 --batch 64 --width 8 --dim 32 --lr 1e-3 --seed 3 --backend cpu -o $out/seat-encoder.mgw
# Three sub-detectors, each on two of the three known families and named for the one it leaves out
# (detector-no-F), so that every family has a sub-detector that never saw it: the evaluation's
# leave-one-family-out tables judge F by it alone. Per family, a third of the synthetic images come
# from its trained generator, a third from 50 untrained colour instances, a third from 50 untrained
# instances with the attacks' grey batch-norm and tanh head (what a data-free attack's generator is
# when it starts). Real and synthetic images alike are blurred, JPEG-compressed, resampled and noised
# at random (half of them each), so that these steps alone tell nothing; the operating point is set to
# flag 0.3 % of fresh post-processed Fashion-MNIST training images, the provider's own benign data
# (docs/detection.md: how the recipe was chosen, and what it still misses).
fakes() { echo "generator-file:$out/gan-$1/generator.mgw+generator:$1+generator-grey:$1"; }
seed=21
for pair in "transposed nearest bilinear" "nearest transposed bilinear" "bilinear transposed nearest"; do
  set -- $pair
  mg train detector --real both --fake "$(fakes $2)+$(fakes $3)" --transform $out/transform.mgw \
     --post-process 0.5 --post-process-resampling --target-fpr 0.003 --calibration-real fashion-mnist \
     --count 4000 --width 8 --epochs 10 --lr 1e-3 --seed $seed --backend cpu -o $out/detector-no-$1.mgw
  seed=$((seed + 1))
done
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
