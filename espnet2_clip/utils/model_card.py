"""Model cards: the ``README.md`` packed with every model (separation and generation alike).

The recipes' pack stage writes ``exp/<tag>/README.md`` with :func:`write_card` (through
``python -m espnet2_clip.bin.model_card``) and packs it into the zip; ``espnet2-clip info`` prints
its key facts (:func:`card_summary`); the Hugging Face upload publishes it as the repo's card
(:func:`retarget`, which points its "How to run it" lines at the Hub id).

A card is Markdown with a YAML front matter that the Hub reads (``license``, ``library_name``,
``pipeline_tag``, ``tags``) plus our own ``espnet2_clip:`` mapping of the facts the prose states
(task, system, corpus, training clips, videos missing, query encoder, scored or not), so that tools
read them without parsing prose. Sections: Task, Training data, Model, Scores, Licence, How to run
it, Citation.
"""

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import yaml

from espnet2_clip.utils.fileio import write_text_atomic

PathLike = Union[str, Path]
FACTS_KEY = "espnet2_clip"
DEFAULT_LICENSE = "cc-by-4.0"
SEPARATION = "separate"
GENERATION = "generate"
TASK_TITLES = {
    SEPARATION: "text-queried sound separation (CLIPSep)",
    GENERATION: "text-to-audio generation (CLIPSonic)",
}
PIPELINE_TAGS = {SEPARATION: "audio-to-audio", GENERATION: "text-to-audio"}
HUB_TAGS = {
    SEPARATION: ["espnet", "audio", "audio-to-audio", "audio-source-separation", "text-queried-separation",
                 "clipsep"],
    GENERATION: ["espnet", "audio", "text-to-audio", "diffusion", "clipsonic"],
}
# corpus (recipe dir name, lower case) -> what the videos are
CORPORA = {
    "vggsound": ("VGGSound", "YouTube videos of the VGGSound lists as the official CLIPSep lists "
                 "(github.com/sony/CLIPSep) select them, downloaded with yt-dlp"),
    "music": ("MUSIC", "YouTube videos of solo instrument performances of the MUSIC lists as the official CLIPSep "
              "lists (github.com/sony/CLIPSep) select them, downloaded with yt-dlp"),
    "mini_bridge": ("bridge world", "a generated world (espnet2_clip.bin.make_bridge_world): synthetic videos "
                    "whose shapes sound, and captioned images; no third-party data"),
}
EXAMPLE_QUERIES = {"vggsound": "dog barking", "music": "violin", "mini_bridge": "circle"}
QUERY_KINDS = {
    "image": "CLIP image embeddings of 1 fps video frames (no text)",
    "text": "text embeddings of the clips' labels",
    "label": "the clips' labels (a learned embedding per label)",
    "none": "none (permutation-invariant training, no query)",
}
CITATIONS = {
    SEPARATION: ("@inproceedings{dong2023clipsep,\n"
                 "  title={CLIPSep: Learning Text-queried Sound Separation with Noisy Unlabeled Videos},\n"
                 "  author={Dong, Hao-Wen and Takahashi, Naoya and Mitsufuji, Yuki and McAuley, Julian and "
                 "Berg-Kirkpatrick, Taylor},\n"
                 "  booktitle={ICLR}, year={2023}}"),
    GENERATION: ("@inproceedings{dong2023clipsonic,\n"
                 "  title={CLIPSonic: Text-to-Audio Synthesis with Unlabeled Videos and Pretrained "
                 "Language-Vision Models},\n"
                 "  author={Dong, Hao-Wen and others},\n"
                 "  booktitle={WASPAA}, year={2023}, note={arXiv:2306.09635}}"),
}
USE_SECTION = "How to run it"
SCORES_SECTION = "Scores"


class CardError(ValueError):
    """A card that cannot be read or written; the message names the file."""


# ------------------------------------------------------------------------------- config facts
def task_of(config: Mapping[str, Any]) -> Optional[str]:
    """"generate" for a CLIPSonic training config, "separate" for a CLIPSep one, else None."""
    if "mel_conf" in config:
        return GENERATION
    if "head" in config or "frontend_conf" in config:
        return SEPARATION
    return None


def generation_query(config: Mapping[str, Any], tag: str, train_query: Optional[str] = None) -> str:
    """What a CLIPSonic model was trained on: "image" (IQ/ZS/PD) or "text" (SD).

    The training config does not record it; the recipe passes it, else a tag ending in ``_sd`` is
    the text-trained reference."""
    if train_query:
        return train_query
    return str(config.get("train_query") or ("text" if tag.endswith("_sd") else "image"))


def system_name(task: str, tag: str, config: Mapping[str, Any], train_query: Optional[str] = None) -> str:
    """The name RESULTS.md gives the model: ``CLIPSep-NIT``, ``CLIPSonic``, ``CLIPSonic-SD``..."""
    if task == SEPARATION:
        from espnet2_clip.bin.make_results import display_name

        return display_name(tag)
    return "CLIPSonic-SD" if generation_query(config, tag, train_query) == "text" else "CLIPSonic"


def generation_variants(config: Mapping[str, Any], train_query: str) -> List[str]:
    """The CLIPSonic variants a packed model runs: IQ / ZS (/ PD with its prior), or SD."""
    if train_query == "text":
        return ["SD"]
    return ["IQ", "ZS"] + (["PD"] if config.get("prior_config") else [])


def _prior_line(prior_config: Any) -> str:
    """How the card names the model's diffusion prior (text queries go through it: PD)."""
    if not prior_config:
        return "none"
    text = str(prior_config)
    if text == "laion" or text.startswith("hf-hub:"):
        repo = "laion/DALLE2-PyTorch" if text == "laion" else text[len("hf-hub:"):]
        return f"the published DALL-E 2 prior {repo} (downloaded on first use; text queries go through it: PD)"
    if text.endswith(".json"):
        return "the published LAION DALL-E 2 prior, packed (text queries go through it: PD)"
    return "packed (text queries go through it: PD)"


def _short(value: Any) -> str:
    """A model name (``ViT-B-32``, ``hf-hub:org/name``, ``org/bert``) as it is; a local file by its name
    (``exp/clip/open_clip_config.json`` -> ``open_clip_config.json``: the zip carries it elsewhere)."""
    text = str(value)
    local = Path(text).suffix in (".json", ".safetensors", ".pt", ".pth", ".bin") or Path(text).exists()
    return Path(text).name if local and not text.startswith("hf-hub:") else text


def encoder_summary(config: Mapping[str, Any]) -> str:
    """``clip (ViT-B-32, weights openai)``, ``bert (bert-base-uncased)``, ``label (label_vocab)``..."""
    name = config.get("query_encoder") or "clip"
    conf = config.get("query_encoder_conf") or {}
    if name == "clip":
        model = _short(conf.get("model_name", "ViT-B-32"))
        pretrained = conf.get("pretrained")
        return f"clip (open_clip {model}" + (f", weights {_short(pretrained)})" if pretrained else ")")
    details = ", ".join(f"{k}={_short(v)}" for k, v in conf.items())
    return f"{name}" + (f" ({details})" if details else "")


# ----------------------------------------------------------------------------- training data
def count_lines(scp: Optional[PathLike]) -> Optional[int]:
    """Number of non-blank lines of a list (the training clips), None without one.

    Raises:
        CardError: if ``scp`` is given but cannot be read.
    """
    if scp is None:
        return None
    try:
        with open(scp, encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    except (OSError, UnicodeDecodeError) as exc:
        raise CardError(f"--train_scp {scp}: cannot read the training list ({exc})") from exc


def download_reports(world_dir: Optional[PathLike]) -> Dict[str, Dict[str, Any]]:
    """``{set: {"requested", "obtained", "missing", "line"}}`` of every
    ``WORLD/download/<set>/download_report.json`` (an unreadable report: ``{"line": why}``)."""
    if world_dir is None:
        return {}
    from espnet2_clip.data.download import missing_report_line

    reports: Dict[str, Dict[str, Any]] = {}
    for report in sorted((Path(world_dir) / "download").glob("*/download_report.json")):
        name = report.parent.name
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
            reports[name] = {"requested": int(data["requested"]), "obtained": int(data["obtained"]),
                             "missing": int(data.get("missing", int(data["requested"]) - int(data["obtained"]))),
                             "line": f"{missing_report_line(report)}; missing ids listed in "
                                     f"`{report.parent / 'missing'}`"}
        except (ValueError, KeyError, TypeError, OSError) as exc:
            reports[name] = {"line": f"unreadable report {report} ({exc})"}
    return reports


def download_lines(world_dir: Optional[PathLike]) -> List[str]:
    """One line per downloaded set: ``test: obtained 41/46 videos (5 missing: ...); missing ids listed in ...``."""
    return [f"{name}: {report['line']}" for name, report in download_reports(world_dir).items()]


def world_line(world_dir: Optional[PathLike]) -> Optional[str]:
    """The generated world's seed, classes and counts (``WORLD/world.json``), None for a real corpus."""
    path = Path(world_dir) / "world.json" if world_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        world = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return None
    return (f"generated world `{world_dir}`: seed {world.get('seed')}, {len(world.get('classes', []))} classes, "
            f"counts {json.dumps(world.get('counts', {}))}")


# ------------------------------------------------------------------------------------ scores
def markdown_tables(text: str) -> List[Tuple[str, List[str]]]:
    """Every markdown table of ``text``: ``(the "## " heading above it, its lines)``."""
    tables: List[Tuple[str, List[str]]] = []
    heading, current = "", None
    for line in text.splitlines():
        if line.startswith("|"):
            if current is None:
                current = []
                tables.append((heading, current))
            current.append(line)
            continue
        current = None
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
    return tables


def _first_cell(row: str) -> str:
    return row.strip().strip("|").split("|")[0].strip().replace("\\|", "|")


def select_rows(text: str, model_rows: Set[str], reference_rows: Set[str]) -> List[Tuple[str, List[str]]]:
    """The tables of ``text`` that have a row of ``model_rows``, reduced to their header, the model's
    rows and the reference rows (mixture / real audio), under their headings."""
    out = []
    for heading, lines in markdown_tables(text):
        if len(lines) < 3 or not any(_first_cell(r) in model_rows for r in lines[2:]):
            continue
        kept = [r for r in lines[2:] if _first_cell(r) in model_rows | reference_rows]
        out.append((heading, lines[:2] + kept))
    return out


def result_rows(task: str, tag: str, config: Mapping[str, Any],
                train_query: Optional[str] = None) -> Tuple[Set[str], Set[str]]:
    """(the model's row names, the reference rows) in the recipe's RESULTS.md."""
    if task == SEPARATION:
        from espnet2_clip.bin.make_results import MIXTURE, QUERY_NAMES, display_name, row_name

        return {row_name(tag, q) for q in QUERY_NAMES} | {display_name(tag)}, {MIXTURE}
    from espnet2_clip.bin.clipsonic_eval import REAL_AUDIO_ROW, variant_row_name

    variants = generation_variants(config, generation_query(config, tag, train_query))
    return {variant_row_name(v) for v in variants} | set(variants), {REAL_AUDIO_ROW}


NOTE_PATTERN = re.compile(r"^- (downloads|test mixtures|text prompt|query encoder|generation|evaluation classifier)")


def results_notes(text: str) -> List[str]:
    """The configuration lines of RESULTS.md (``- downloads ...``, ``- text prompt ...``, ``- generation ...``)."""
    return [line for line in text.splitlines() if NOTE_PATTERN.match(line)]


def scores_section(task: str, system: str, results: Optional[PathLike], model_rows: Set[str],
                   reference_rows: Set[str]) -> Tuple[bool, str]:
    """(scored?, the body of the Scores section).

    Args:
        task: "separate" or "generate" (names the metrics).
        system: The model's display name.
        results: The recipe's RESULTS.md; None or a missing file: "Not scored".
        model_rows: Row names (first cells) that belong to the model.
        reference_rows: Rows kept beside them (the mixture, real audio).
    """
    if results is None:
        return False, "Not scored: no RESULTS.md was given when this card was written.\n"
    path = Path(results)
    if not path.is_file():
        return False, f"Not scored: `{path}` does not exist (the recipe's scoring stages have not run).\n"
    text = path.read_text(encoding="utf-8", errors="replace")
    tables = select_rows(text, model_rows, reference_rows)
    if not tables:
        return False, f"Not scored: `{path.name}` has no row of {system}.\n"
    metric = ("BSS-eval v4 SDR / SIR / SAR (dB), mean ± standard error and median, on the recipe's test mixtures "
              "(only the test clips that could still be downloaded; see Training data)"
              if task == SEPARATION else
              "relevance (accuracy % of the recipe's evaluation classifier on clips generated for each class) "
              "and FD (Fréchet distance to real clips in its embedding space); where the recipe scored them, FAD "
              "(VGGish embeddings) and CLAP score (CLAP text-audio cosine similarity), with the models named in "
              "RESULTS.md")
    body = [f"From the recipe's `{path.name}` (packed with the model): the rows of {system} and the reference "
            f"rows; {metric}.", ""]
    for heading, lines in tables:
        if heading:
            body += [f"### {heading}", ""]
        body += lines + [""]
    notes = results_notes(text)
    if notes:
        body += notes + [""]
    return True, "\n".join(body)


# ---------------------------------------------------------------------------------- the card
@dataclass
class CardInputs:
    """What a card is written from (the recipe's pack stage fills these)."""

    config: Dict[str, Any]
    tag: str
    corpus: str = ""
    results: Optional[PathLike] = None
    world_dir: Optional[PathLike] = None
    train_scp: Optional[PathLike] = None
    train_query: Optional[str] = None  # CLIPSonic: image / text (the config does not record it)
    model_ref: str = "packed_model.zip"  # what the run lines load (a zip path; the Hub id after upload)
    license: str = DEFAULT_LICENSE
    title: str = ""


def use_section(task: str, model_ref: str, query: str, variants: Sequence[str] = ()) -> str:
    """The body of "How to run it": the ``espnet2-clip`` command lines and the Python API."""
    if task == SEPARATION:
        return "\n".join([
            "```sh",
            f'espnet2-clip separate mixture.wav -q "{query}" -o {query.replace(" ", "_")}.wav -m {model_ref}',
            f'espnet2-clip separate mixture.wav --negative "{query}" -o rest.wav -m {model_ref}  # all but the query',
            f"espnet2-clip info {model_ref}",
            "```",
            "",
            "```python",
            "from espnet2_clip.bin.clipsep_inference import TextQueriedSeparation",
            "",
            f'sep = TextQueriedSeparation.from_pretrained("{model_ref}")',
            f'estimate = sep(mixture, fs, "{query}")  # mono (N,) or (N, C) numpy array at fs',
            "```",
            "",
            "Install: `pip install -e .` in a clone of espnet2_clip (it registers the model classes with ESPnet).",
            "",
        ])
    image = ["from PIL import Image", "", 'wave = t2a(Image.open("frame.jpg"), guidance_scale=3.0, seed=0)  # IQ']
    return "\n".join([
        "```sh",
        f'espnet2-clip generate "{query}" -n 2 --guidance 3 --steps 25 --seed 0 -o {query.replace(" ", "_")}.wav '
        f"-m {model_ref}",
        f"espnet2-clip info {model_ref}",
        "```",
        "",
        "```python",
        "from espnet2_clip.bin.clipsonic_inference import TextToAudio",
        "",
        f't2a = TextToAudio.from_pretrained("{model_ref}")',
        f'wave = t2a("{query}", guidance_scale=3.0, num_steps=25, seed=0)  # (clip_samples,) at 16 kHz',
        *(image if "IQ" in variants else []),
        "```",
        "",
        "Install: `pip install -e .` in a clone of espnet2_clip (it registers the model classes with ESPnet).",
        "",
    ])


def _join(*parts: Any) -> str:
    """The parts that are known (not None / empty), joined by ", "."""
    return ", ".join(str(p) for p in parts if p not in (None, "", {}, []))


def _model_lines(task: str, config: Mapping[str, Any], variants: Sequence[str]) -> List[str]:
    """The "Model" section's lines after the query encoder: architecture, audio, training."""
    def has(key: str, text: str) -> Optional[str]:
        return text if config.get(key) is not None else None

    training = _join(has("batch_size", f"batch {config.get('batch_size')} clips"),
                     has("num_iters_per_epoch", f"{config.get('num_iters_per_epoch')} steps per epoch"),
                     has("max_epoch", f"{config.get('max_epoch')} epochs"),
                     has("optim", f"{config.get('optim')} {config.get('optim_conf') or ''}".rstrip()),
                     has("scheduler", f"scheduler {config.get('scheduler')}"))
    if task == SEPARATION:
        from espnet2_clip.sep.backbone_config import describe_backbone

        lines = [
            f"- head `{config.get('head')}`, query fusion `{config.get('query')}` "
            f"{config.get('query_conf') or ''}".rstrip(),
            f"- backbone: {describe_backbone(config)}",
            "- audio: " + _join(f"{config.get('sample_rate', 16000)} Hz mono",
                                has("clip_samples", f"{config.get('clip_samples')}-sample clips"),
                                has("frontend_conf", f"front end {config.get('frontend_conf')}")),
        ]
    else:
        mel = config.get("mel_conf") or {}
        unet = config.get("unet_conf") or {}
        lines = [
            f"- mel diffusion U-Net: channels {unet.get('channels')}, condition {unet.get('cond_dim')}-d",
            "- audio: " + _join(f"{mel.get('fs')} Hz", f"{mel.get('n_mels')} mel bins", f"n_fft {mel.get('n_fft')}",
                                f"hop {mel.get('hop_length')}",
                                has("clip_samples", f"{config.get('clip_samples')}-sample clips")),
            f"- vocoder: {'HiFi-GAN (packed)' if config.get('vocoder_file') else 'Griffin-Lim'}; diffusion prior: "
            f"{_prior_line(config.get('prior_config'))}",
            f"- variants this model runs: {', '.join(variants)}",
        ]
    return lines + ([f"- training: {training}"] if training else [])


def make_card(inputs: CardInputs) -> str:
    """The README.md text of a packed model.

    Raises:
        CardError: if the config is neither a CLIPSep nor a CLIPSonic training config, or the training
            list cannot be read.
    """
    config, tag = inputs.config, inputs.tag
    task = task_of(config)
    if task is None:
        raise CardError(f"config of '{tag}': neither a CLIPSep (head / frontend_conf) nor a CLIPSonic (mel_conf) "
                        "training config")
    train_query = (generation_query(config, tag, inputs.train_query) if task == GENERATION
                   else str(config.get("train_query", "image")))
    variants = generation_variants(config, train_query) if task == GENERATION else []
    system = system_name(task, tag, config, train_query)
    key = inputs.corpus.strip().lower().replace(" ", "_")
    corpus, corpus_about = CORPORA.get(key, (inputs.corpus or "unknown", "the recipe's own data"))
    query = EXAMPLE_QUERIES.get(key, "dog barking")
    clips = count_lines(inputs.train_scp)
    reports = download_reports(inputs.world_dir)
    encoder = encoder_summary(config)
    model_rows, reference_rows = result_rows(task, tag, config, train_query)
    scored, scores = scores_section(task, system, inputs.results, model_rows, reference_rows)

    facts = {
        "task": task, "system": system, "tag": tag, "corpus": corpus, "training_queries": train_query,
        "training_clips": clips, "query_encoder": encoder, "scored": scored, "model": inputs.model_ref,
        "videos": {name: {k: r[k] for k in ("requested", "obtained", "missing")}
                   for name, r in reports.items() if "missing" in r},
    }
    if variants:
        facts["variants"] = variants
    front = {"license": inputs.license, "library_name": "espnet", "pipeline_tag": PIPELINE_TAGS[task],
             "tags": HUB_TAGS[task], FACTS_KEY: facts}

    data = [f"- corpus: **{corpus}**: {corpus_about}.",
            f"- training clips: {clips if clips is not None else 'not known'}"
            + (f" (`{inputs.train_scp}`)" if inputs.train_scp else "")
            + "; 16 kHz mono audio and 1 fps frames of each video.",
            f"- training queries: {QUERY_KINDS.get(train_query, train_query)}."]
    world = world_line(inputs.world_dir)
    if world:
        data.append(f"- {world}")
    if reports:
        data.append("- videos obtained / missing (dead, private or blocked YouTube ids are counted, not replaced):")
        data += [f"  - {name}: {r['line']}" for name, r in reports.items()]
    else:
        data.append("- videos missing: no download report (generated or local data, or downloads not recorded)")

    title = inputs.title or TASK_TITLES[task]
    paper = ("*CLIPSep: Learning Text-queried Sound Separation with Noisy Unlabeled Videos* (Dong et al., ICLR 2023)"
             if task == SEPARATION else
             "*CLIPSonic: Text-to-Audio Synthesis with Unlabeled Videos and Pretrained Language-Vision Models* "
             "(Dong et al., WASPAA 2023)")
    task_line = (f"Text-queried sound separation: given a mixture and a query (text, image or video frames), "
                 f"{system} returns the sound the query describes. It learned from unlabeled videos only "
                 "(no text-audio pairs): a frame's CLIP image embedding queries the soundtrack in training, "
                 "CLIP's text embedding takes its place at test time."
                 if task == SEPARATION else
                 f"Text-to-audio: {system} generates a clip for a text (or an image) query with a CLIP-conditioned "
                 "mel diffusion model. "
                 + ("It learned from unlabeled videos only (no text-audio pairs): the audio of a video is "
                    "generated from the CLIP image embedding of its frames; text queries are fed directly (ZS) "
                    "or through a diffusion prior (PD)." if train_query != "text" else
                    "This is the supervised reference (SD): trained on CLIP text embeddings of the labels."))
    lines = [
        "---", yaml.safe_dump(front, sort_keys=False, allow_unicode=True).rstrip(), "---", "",
        f"# {system} ({corpus}): {title}", "",
        f"A {system} model (`{tag}`) trained with the espnet2_clip recipe "
        f"`egs2/{key or 'CORPUS'}/{'clipsep1' if task == SEPARATION else 'clipsonic1'}`, a re-implementation of "
        f"{paper}.", "",
        "## Task", "", task_line, "",
        "## Training data", "", *data, "",
        "## Model", "",
        f"- query encoder (frozen): {encoder}",
        *_model_lines(task, config, variants), "",
        f"## {SCORES_SECTION}", "", scores,
        "## Licence", "",
        f"- model weights: {inputs.license} (the `license` of this card).",
        "- code: Apache-2.0 (espnet2_clip).",
        f"- training data: {corpus_about}; the videos belong to their uploaders and keep their own terms."
        if key in ("vggsound", "music") else f"- training data: {corpus_about}.",
        f"- query encoder: {encoder} keeps its own licence.", "",
        f"## {USE_SECTION}", "", use_section(task, inputs.model_ref, query, variants),
        "## Citation", "", "```bibtex", CITATIONS[task], "```", "",
    ]
    return "\n".join(lines)


def write_card(path: PathLike, inputs: CardInputs) -> str:
    """Write the card of ``inputs`` to ``path`` atomically; returns its text."""
    text = make_card(inputs)
    write_text_atomic(path, text)
    return text


# ------------------------------------------------------------------------------ reading back
@dataclass
class ModelCard:
    """A parsed card: front matter, the text before the first section, and the sections in order."""

    front: Dict[str, Any]
    preamble: str
    sections: List[Tuple[str, str]] = field(default_factory=list)  # (heading, body)

    @property
    def facts(self) -> Dict[str, Any]:
        """The ``espnet2_clip:`` mapping of the front matter ({} if absent)."""
        facts = self.front.get(FACTS_KEY)
        return facts if isinstance(facts, dict) else {}

    def section(self, heading: str) -> Optional[str]:
        """The body of the ``## heading`` section, None if the card has none."""
        return next((body for name, body in self.sections if name == heading), None)

    def render(self) -> str:
        """The card as text (a parsed, unchanged card renders to the text it was parsed from)."""
        front = "---\n" + yaml.safe_dump(self.front, sort_keys=False, allow_unicode=True) + "---\n"
        return front + self.preamble + "".join(f"## {name}\n{body}" for name, body in self.sections)


def parse_card(text: str, source: str = "README.md") -> ModelCard:
    """Split a card into front matter and ``## `` sections (a ``## `` inside a code block is text).

    Raises:
        CardError: naming ``source`` if there is no front matter or it is not a YAML mapping.
    """
    if not text.startswith("---\n"):
        raise CardError(f"{source}: no YAML front matter (a model card starts with a '---' line)")
    end = text.find("\n---\n", 3)
    if end < 0:
        raise CardError(f"{source}: front matter not closed by a '---' line")
    try:
        front = yaml.safe_load(text[4:end + 1])
    except yaml.YAMLError as exc:
        raise CardError(f"{source}: front matter is not YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(front, dict):
        raise CardError(f"{source}: front matter is not a YAML mapping")
    body = text[end + len("\n---\n"):]
    preamble, sections, current, fenced = [], [], None, False
    for line in body.splitlines(keepends=True):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            current = [line[3:].rstrip("\n"), []]
            sections.append(current)
        elif current is None:
            preamble.append(line)
        else:
            current[1].append(line)
    return ModelCard(front, "".join(preamble), [(name, "".join(lines)) for name, lines in sections])


def retarget(text: str, model_ref: str, source: str = "README.md") -> str:
    """The card with its run lines (and ``model`` fact) pointing at ``model_ref`` (e.g. the Hub id)."""
    card = parse_card(text, source)
    old = card.facts.get("model")
    if not old or old == model_ref:
        return text
    card.sections = [(name, body.replace(str(old), model_ref) if name == USE_SECTION else body)
                     for name, body in card.sections]
    card.front[FACTS_KEY]["model"] = model_ref
    return card.render()


def card_summary(text: str, source: str = "README.md") -> List[str]:
    """The key facts of a card for ``espnet2-clip info``: system, corpus, data, encoder, licence, scores."""
    card = parse_card(text, source)
    facts = card.facts
    if not facts:
        raise CardError(f"{source}: front matter has no '{FACTS_KEY}' facts (not an espnet2_clip model card)")
    videos = facts.get("videos") or {}
    missing = ", ".join(f"{name} {v.get('missing')} of {v.get('requested')}" for name, v in videos.items())
    clips = facts.get("training_clips")
    lines = [
        f"model card: {source}",
        f"system: {facts.get('system')} ({facts.get('tag')}), {TASK_TITLES.get(facts.get('task'), facts.get('task'))}",
        f"training data: {facts.get('corpus')}, {clips if clips is not None else 'unknown number of'} clips, "
        f"queries: {facts.get('training_queries')}; videos missing: {missing or 'no download report'}",
        f"query encoder: {facts.get('query_encoder')}",
        f"licence: {card.front.get('license', 'not stated')}",
    ]
    if facts.get("variants"):
        lines.append(f"variants: {', '.join(facts['variants'])}")
    scores = (card.section(SCORES_SECTION) or "").strip()
    if not facts.get("scored"):
        lines.append("scores: " + (scores.splitlines()[0] if scores else "not scored"))
    else:
        kept = [line for line in scores.splitlines() if line.strip()]
        lines += ["scores:"] + [f"  {line}" for line in kept]
    return lines
