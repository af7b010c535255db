"""Publish our Hub repos in one command: download the authors' originals, convert, push (a dry run by default).

    python scripts/publish_all.py [--work DIR] [--only PATTERN] [--originals DIR] [--map MAP.json]
                                  [--urls MAP.json] [--no-macs] [--push] [--accept-hosting-note ARCH.TAG ...]
    python scripts/publish_all.py --cards-only [--cards DIR] [--only PATTERN]

For every tag of the weights manifest with a `timm-tricks/` repo (matching `--only`):

1. the original: ORIGINALS/<the manifest's original_filename> or its `--map` entry (a JSON object
   {"arch.tag": "path"}, relative paths under ORIGINALS) where present, else downloaded from the manifest's
   `download_url` (or its `--urls` entry, {"arch.tag": "url"}, e.g. a mirror) into WORK/downloads/<arch.tag>/ and
   checked against the manifest's checksum (`timm_tricks.weights.origin`, the code `pretrained=True` uses);
2. converted into WORK/<arch.tag> by `timm-tricks convert` (kept when converted before: an interrupted run resumes;
   delete the folder to convert again);
3. uploaded to its manifest repo with `--push` (token from HF_TOKEN or `hf auth login`); without it, the upload
   is listed, nothing is sent.

A tag whose manifest entry carries a hosting note (licence not cleared, terms to carry) is skipped unless named
with `--accept-hosting-note`: a person must have read the note. `--cards-only` writes, without any download, each
tag's model card README.md and config.json into CARDS/<arch.tag>/ (default: the repository's `weights/`, where
they are committed; tests/test_weights_publishing.py checks that they match the manifest).

Exit status: 0, or 1 when a download, conversion or upload failed; 2 for bad arguments.
"""
import argparse
import fnmatch
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from huggingface_hub import get_token

from timm_tricks.errors import TricksError
from timm_tricks.publishing import (
    PUBLISHING_ORG,
    convert_checkpoint,
    plan_upload,
    upload,
    write_card_files,
)
from timm_tricks.publishing.convert import RECORD_FILE
from timm_tricks.weights import ManifestEntry, load_manifest, load_tag_map
from timm_tricks.weights.origin import download

REPO_ROOT = Path(__file__).resolve().parents[1]
CARDS_ROOT = REPO_ROOT / 'weights'

Row = Tuple[str, str, str]  # (arch.tag, outcome, detail)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work', type=Path, default=CARDS_ROOT / '_work',
                        help='downloads and converted folders go here (default weights/_work, not committed)')
    parser.add_argument('--only', default='*', help="wildcard over the tags, e.g. 'pyconv*' (default all)")
    parser.add_argument('--originals', type=Path, help="folder of the authors' checkpoints downloaded by hand")
    parser.add_argument('--map', type=Path, help='JSON {"arch.tag": "file"} for files in ORIGINALS not named as in '
                                                 'the manifest')
    parser.add_argument('--urls', type=Path, help='JSON {"arch.tag": "url"}: download from here instead')
    parser.add_argument('--no-macs', action='store_true', help='leave the fvcore MAC counts out of the cards')
    parser.add_argument('--push', action='store_true', help='upload (default: a dry run listing the uploads)')
    parser.add_argument('--accept-hosting-note', action='append', default=[], metavar='ARCH.TAG',
                        help='publish this tag although its manifest entry carries a hosting note (read it first)')
    parser.add_argument('--cards-only', action='store_true',
                        help='only write the model cards and config.json files (no download)')
    parser.add_argument('--cards', type=Path, default=CARDS_ROOT, help='with --cards-only: where (default weights/)')
    return parser.parse_args(argv)


def find_original(name: str, entry: ManifestEntry, args: argparse.Namespace, files: Dict[str, str],
                  urls: Dict[str, str]) -> Path:
    """The tag's original: a file given by hand, or one downloaded (and checksum-checked) into the work folder."""
    if args.originals is not None:
        given = files.get(name) or entry.original_filename
        if given and (args.originals / given).is_file():
            return args.originals / given
    url = urls.get(name, entry.download_url)
    folder = args.work / 'downloads' / name
    path = folder / (entry.original_filename or 'original.pth')
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        download(url, path, entry.checksum_digits)
    return path


def publish_tag(name: str, entry: ManifestEntry, args: argparse.Namespace, files: Dict[str, str],
                urls: Dict[str, str]) -> List[Row]:
    """Download, convert (unless converted before) and push one tag; returns its report rows."""
    out = args.work / name
    if (out / RECORD_FILE).is_file():
        rows = [(name, 'kept', f'{out} was converted before')]
    else:
        try:
            convert_checkpoint(name, find_original(name, entry, args, files, urls), out, count_macs=not args.no_macs)
        except TricksError as e:
            return [(name, 'failed', str(e))]
        rows = [(name, 'converted', str(out))]
    try:
        plan = plan_upload(out, entry.hf_hub_id, accept_hosting_note=name in args.accept_hosting_note)
        if args.push:
            rows.append((name, 'pushed', upload(plan)))
        else:
            rows.append((name, 'dry run', f"would upload {', '.join(f for f, _ in plan.files)} to {plan.url}"))
    except TricksError as e:
        rows.append((name, 'failed', str(e)))
    return rows


def write_cards(names: List[str], root: Path) -> List[Row]:
    rows = []
    for name in names:
        write_card_files(name, root / name)
        rows.append((name, 'card', str(root / name)))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    manifest = load_manifest()
    try:
        files = load_tag_map(args.map, 'file') if args.map else {}
        urls = load_tag_map(args.urls, 'url') if args.urls else {}
    except TricksError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if args.push and get_token() is None:
        print('error: --push needs a Hugging Face write token: run `hf auth login` or set HF_TOKEN', file=sys.stderr)
        return 2
    names = sorted(fnmatch.filter(manifest, args.only))
    ours = [name for name in names if manifest[name].hf_hub_id.startswith(PUBLISHING_ORG + '/')]
    if args.cards_only:
        rows = write_cards(ours, args.cards)
    else:
        rows = [(name, 'not ours', f'loads {manifest[name].hf_hub_id}: nothing to publish')
                for name in names if name not in ours]
        for name in ours:
            entry = manifest[name]
            if entry.hosting and name not in args.accept_hosting_note:
                rows.append((name, 'skipped', f'hosting note (pass --accept-hosting-note {name} once read): '
                                              f'{entry.hosting}'))
                continue
            for row in publish_tag(name, entry, args, files, urls):
                rows.append(row)
                print(f'{row[0]}: {row[1]}: {row[2]}', flush=True)  # progress: downloads and conversions take a while

    print('\nreport:')
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, outcome, detail in rows:
        print(f'  {name:<{width}}  {outcome:<10}  {detail}')
    outcomes = [outcome for _, outcome, _ in rows]
    print('  ' + ', '.join(f'{outcomes.count(o)} {o}' for o in dict.fromkeys(outcomes)))
    return 1 if 'failed' in outcomes else 0


if __name__ == '__main__':
    sys.exit(main())
