#!/usr/bin/env bash
# Writes progressive.jpg: the fuzz tests' 40×30 pattern (tests/Imaging/ImageFuzzTests.cs, Pattern) as a
# progressive JPEG, which the managed encoder cannot write. Needs Debian's libjpeg-turbo-progs (cjpeg).
set -euo pipefail
cd "$(dirname "$0")"
python3 - > /tmp/mg-pattern.ppm <<'PY'
import math, sys
w, h = 40, 30
out = sys.stdout.buffer
out.write(b"P6\n%d %d\n255\n" % (w, h))
for y in range(h):
    for x in range(w):
        out.write(bytes([x * 6, y * 8, int(128 + 60 * math.sin(x * 0.3 + y * 0.2))]))
PY
cjpeg -progressive -quality 90 -sample 2x2 /tmp/mg-pattern.ppm > progressive.jpg
rm /tmp/mg-pattern.ppm
