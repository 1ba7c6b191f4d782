"""espnet2_clip: CLIPSep and CLIPSonic as an ESPnet2 plugin."""

from setuptools import find_packages, setup

# Known-good, pinned set (see tools/install.sh for the install order).
TORCH = ["torch==2.9.1", "torchvision==0.24.1", "torchaudio==2.9.1"]
install_requires = TORCH + [
    "espnet==202511",
    "espnet_model_zoo==0.1.7",
    "open_clip_torch==3.3.0",
    "sentencepiece==0.2.0",
    "transformers>=4.40",
    "diffusers==0.42.1",
    # ESPnet's trainer imports these but does not declare them.
    "tensorboard",
    "matplotlib",
    # scoring
    "museval==0.4.1",
    "fast_bss_eval==0.1.3",
    "mir_eval",
    # video / data
    "imageio-ffmpeg==0.8.1",
    "yt-dlp==2026.10.26",
    "soundfile",
    "pillow",
    "tqdm",
]

setup(
    name="espnet2_clip",
    version="0.1.0",
    description="Text-queried sound separation (CLIPSep) and text-to-audio (CLIPSonic) "
    "learned from unlabeled videos, as an ESPnet2 plugin",
    packages=find_packages(include=["espnet2_clip", "espnet2_clip.*"]),
    python_requires=">=3.10",
    install_requires=install_requires,
    extras_require={
        "test": ["pytest>=7,<8.4", "pytest-timeout", "pytest-xdist==3.8.0", "selenium==4.51.0"],
        # the bridge world's recorded sounds (make_bridge_world --sounds soundfont); also needs the system's
        # FluidSynth library and a General MIDI SoundFont: apt-get install libfluidsynth3 timgm6mb-soundfont
        "recorded": ["pyfluidsynth==1.4.0"],
    },
    license="Apache-2.0",
    entry_points={"console_scripts": ["espnet2-clip = espnet2_clip.bin.cli:main"]},
)
