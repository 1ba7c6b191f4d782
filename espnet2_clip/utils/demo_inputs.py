"""The inputs of ``espnet2-clip demo``: a directory of recordings with their queries, or prompts.

Separation (a CLIPSep model), ``--inputs DIR``:

* every audio or video file directly in ``DIR`` is an example, in name order (hidden files and
  sub-directories are skipped, so keep references in e.g. ``DIR/refs/``);
* ``-q TEXT`` (repeatable) is asked of every file;
* ``DIR/queries.tsv`` (optional) adds per-file queries, one per line: ``FILE<TAB>QUERY`` or
  ``FILE<TAB>QUERY<TAB>REFERENCE``, where REFERENCE is a recording of what the query should give
  (shown beside the estimate). FILE and REFERENCE are relative to ``DIR``; blank lines and lines
  starting with ``#`` are skipped.

Generation (a CLIPSonic model): prompts from ``-q TEXT`` (repeatable) and ``DIR/prompts.txt`` (one
per line, ``#`` comments), in that order.

Every problem is a ``ValueError`` with one line naming the file (and line) and what was expected.
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import soundfile as sf

from espnet2_clip.utils.audio_io import VIDEO_SUFFIXES

QUERIES_FILE = "queries.tsv"
PROMPTS_FILE = "prompts.txt"
_EXTRA_AUDIO = (".aif", ".oga", ".opus")


def audio_suffixes() -> Tuple[str, ...]:
    """File name endings read as audio: libsndfile's formats (without headerless RAW) and a few aliases."""
    found = {f".{name.lower()}" for name in sf.available_formats() if name.upper() != "RAW"}
    return tuple(sorted(found | set(_EXTRA_AUDIO)))


def _expected() -> str:
    return f"audio (wav, flac, ogg, mp3, ...) or video ({', '.join(s.lstrip('.') for s in VIDEO_SUFFIXES)})"


@dataclass
class SeparationInput:
    """One recording of the demo and its queries: ``(text, reference path or None)``."""

    path: Path
    queries: List[Tuple[str, Optional[Path]]] = field(default_factory=list)


def _check_dir(inputs: Optional[str]) -> Path:
    if inputs is None:
        raise ValueError("--inputs: required for a CLIPSep model (a directory of audio or video files)")
    path = Path(inputs)
    if not path.exists():
        raise ValueError(f"--inputs '{path}': no such directory")
    if not path.is_dir():
        raise ValueError(f"--inputs '{path}': not a directory; expected a directory of audio or video files")
    return path


def _check_query(text: str, where: str) -> str:
    if not text.strip():
        raise ValueError(f"{where}: empty or whitespace-only query; expected a text such as 'a dog barking'")
    return text.strip()


def _read_lines(path: Path) -> List[Tuple[int, str]]:
    """(line number, line) of the non-blank, non-comment lines of a UTF-8 text file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror})") from exc
    return [(n, line.rstrip("\r\n")) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]


def read_separation_inputs(inputs: Optional[str], queries: Sequence[str] = ()) -> List[SeparationInput]:
    """The recordings of ``inputs`` with their queries (``queries`` asked of every one).

    Does not require a query per file (a non-queried model takes none); :func:`check_queries` does.

    Raises:
        ValueError: a missing or empty directory, a file of an unknown type, a bad ``queries.tsv`` line.
    """
    root = _check_dir(inputs)
    audio = set(audio_suffixes()) | set(VIDEO_SUFFIXES)
    files = {}
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or path.is_dir() or path.name in (QUERIES_FILE, PROMPTS_FILE):
            continue
        if path.suffix.lower() not in audio:
            raise ValueError(f"--inputs '{path}': unknown file type '{path.suffix or path.name}'; expected "
                             f"{_expected()}, {QUERIES_FILE} or {PROMPTS_FILE}")
        files[path.name] = SeparationInput(path, [(_check_query(q, "-q"), None) for q in queries])
    table = root / QUERIES_FILE
    references = set()
    if table.is_file():
        for lineno, line in _read_lines(table):
            where = f"{table}:{lineno}"
            parts = line.split("\t")
            if len(parts) not in (2, 3):
                raise ValueError(f"{where}: expected 'FILE<TAB>QUERY' or 'FILE<TAB>QUERY<TAB>REFERENCE' "
                                 f"(tab-separated), got {len(parts)} field(s)")
            name, text = parts[0].strip(), _check_query(parts[1], where)
            reference = None
            if len(parts) == 3 and parts[2].strip():
                reference = root / parts[2].strip()
                if not reference.is_file():
                    raise ValueError(f"{where}: reference '{reference}': no such file")
                if reference.suffix.lower() not in audio:
                    raise ValueError(f"{where}: reference '{reference}': unknown file type "
                                     f"'{reference.suffix}'; expected {_expected()}")
                references.add(reference.resolve())
            if name not in files:
                raise ValueError(f"{where}: '{name}' is not an audio or video file in '{root}'")
            files[name].queries.append((text, reference))
    items = [item for item in files.values() if item.path.resolve() not in references]
    if not items:
        raise ValueError(f"--inputs '{root}': no audio or video files; expected {_expected()}")
    return items


def check_queries(items: Sequence[SeparationInput], needs_query: bool, model: str) -> None:
    """Every recording has a query (``needs_query``) or none has (a non-queried model)."""
    for item in items:
        if needs_query and not item.queries:
            raise ValueError(f"--inputs '{item.path}': no query; give -q TEXT or a line "
                             f"'{item.path.name}<TAB>QUERY' in {item.path.parent / QUERIES_FILE}")
        if not needs_query and item.queries:
            raise ValueError(f"--model_tag '{model}': a non-queried (PIT) model takes no queries "
                             f"(-q / {QUERIES_FILE}), but '{item.path.name}' has some")


def read_prompts(inputs: Optional[str], queries: Sequence[str] = ()) -> List[str]:
    """The prompts of a generation demo: ``queries`` then ``inputs/prompts.txt``.

    Raises:
        ValueError: no prompt, an empty prompt, or a file other than prompts.txt in ``inputs``.
    """
    prompts = [_check_query(q, "-q") for q in queries]
    if inputs is not None:
        root = Path(inputs)
        if not root.is_dir():
            raise ValueError(f"--inputs '{root}': no such directory")
        for path in sorted(root.iterdir()):
            if not path.name.startswith(".") and path.is_file() and path.name != PROMPTS_FILE:
                raise ValueError(f"--inputs '{path}': a CLIPSonic model takes text prompts (-q TEXT or "
                                 f"{root / PROMPTS_FILE}), not files like this one")
        if (root / PROMPTS_FILE).is_file():
            prompts += [_check_query(line, f"{root / PROMPTS_FILE}:{n}") for n, line in _read_lines(root / PROMPTS_FILE)]
    if not prompts:
        raise ValueError("no prompt: give -q TEXT (repeatable) or --inputs DIR with a prompts.txt (one per line)")
    return prompts
