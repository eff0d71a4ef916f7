#!/usr/bin/env bash
# Regenerates data/corpus/kjv.txt, the embedded default training corpus: the King James Bible
# (public domain), one verse per line, from Debian's bible-kjv (text: bible-kjv-text 4.38).
# Usage: scripts/make-corpus.sh   (needs root for apt when bible-kjv is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bible >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends bible-kjv bible-kjv-text
fi
bible -l10000 "gen1:1-rev22:21" | sed -E 's/^ +[0-9]+ //' | grep -v '^$' > data/corpus/kjv.txt
ls -l data/corpus/kjv.txt
