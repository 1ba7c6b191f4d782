"""Generate the bridge world (videos, captioned images, interference pool, test mixtures).

Example::

    python -m espnet2_clip.bin.make_bridge_world --output_dir world --seed 0
    python -m espnet2_clip.bin.make_bridge_world --output_dir world_ci --preset ci
    python -m espnet2_clip.bin.make_bridge_world --output_dir world_noisy --offscreen_noise_prob 0.5
    python -m espnet2_clip.bin.make_bridge_world --output_dir world_recorded --sounds soundfont  # instruments; FluidSynth
    python -m espnet2_clip.bin.make_bridge_world --output_dir world_hum --offscreen_noise_prob 0.3 \
        --offscreen_kinds wind,hum --offscreen_max_sources 1 --offscreen_snr_db 0,6

Options left out take the preset's value (``default`` or ``ci``). See
:mod:`espnet2_clip.data.bridge_world` for the layout.
"""

import argparse
import dataclasses
import os
import sys
from typing import List, Optional

from espnet2_clip.data.bridge_world import PRESETS, WorldConfig, generate_world
from espnet2_clip.utils.cli import OUTPUT_DIR_ALIASES, parse_args


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--output_dir", required=True, help="output world directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="size preset; explicit options override it")
    defaults = WorldConfig()
    for f in dataclasses.fields(WorldConfig):
        if f.name == "seed":
            continue
        value = getattr(defaults, f.name)
        if isinstance(value, tuple):  # comma-separated, e.g. --offscreen_snr_db 0,6
            p.add_argument(f"--{f.name}", type=_comma_list(type(value[0]), f.name), default=None,
                           help=f"comma-separated (default: preset value, {','.join(map(str, value))} in 'default')")
        else:
            p.add_argument(f"--{f.name}", type=type(value), default=None,
                           help=f"(default: preset value, {value} in 'default')")
    p.add_argument("--nj", type=int, default=min(2, os.cpu_count() or 1), help="parallel workers")
    p.add_argument("--force", action="store_true",
                   help="regenerate when --output_dir holds a world with other settings")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    return p


def _comma_list(item_type, name: str):
    def parse(text: str) -> tuple:
        try:
            return tuple(item_type(v) for v in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{name}: expected comma-separated {item_type.__name__} values, got '{text}'")
    return parse


def config_from_args(args) -> WorldConfig:
    kw = dict(PRESETS[args.preset])
    for f in dataclasses.fields(WorldConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            kw[f.name] = v
    return WorldConfig(**kw)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(get_parser(), argv, OUTPUT_DIR_ALIASES)
    try:
        cfg = config_from_args(args)
        generate_world(args.output_dir, cfg, nj=max(1, args.nj), force=args.force,
                       progress=not args.no_progress)
    except ValueError as e:
        print(f"make_bridge_world: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
