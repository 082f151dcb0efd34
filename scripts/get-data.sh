#!/usr/bin/env bash
# FashionMNIST, the embedded default data set: Debian's package where apt is usable,
# else torchvision's download into $GENPRIOR_DATA (~/.cache/genprior/data).
set -euo pipefail
dir=/usr/share/datasets/fashion-mnist
[ -f "$dir/train-images-idx3-ubyte.gz" ] && exit 0
if command -v apt-get >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo -n"
  if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
    echo "installing FashionMNIST (Debian package dataset-fashion-mnist)"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq dataset-fashion-mnist \
      && [ -f "$dir/train-images-idx3-ubyte.gz" ] && exit 0
  fi
fi
echo "downloading FashionMNIST with torchvision"
"${PY:-python3}" -c "from genprior.data import load_split as l; l('fashion_mnist', 'train', download=True); l('fashion_mnist', 'test', download=True)"
