"""Convert every tag of the weights manifest from a folder of the authors' downloads, and optionally push them.

    python scripts/publish_all.py ORIGINALS OUT_ROOT [--map MAP.json] [--only PATTERN] [--no-macs]
                                  [--push [--dry-run] [--accept-hosting-note ARCH.TAG ...]]

A tag's file is its `--map` entry (a JSON object {"arch.tag": "path"}, relative paths under ORIGINALS), else
ORIGINALS/<the manifest's original_filename>. Tags without a file are reported with their download URL; tags that
load another organisation's repo are not ours to publish. OUT_ROOT/<arch.tag> is written by
`timm-tricks convert`; a folder already converted there is kept, so an interrupted run can be resumed (delete the
folder to convert again). `--push` uploads each folder to its manifest repo; tags whose manifest entry restricts
hosting are only pushed when named with `--accept-hosting-note`.

Exit status: 0, or 1 when a conversion or an upload failed; 2 for bad arguments.
"""
import argparse
import fnmatch
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from timm_tricks.errors import TricksError  # noqa: E402
from timm_tricks.weights import load_manifest  # noqa: E402
from timm_tricks.weights.convert import (  # noqa: E402
    PUBLISHING_ORG, RECORD_FILE, HostingRestrictedError, convert_checkpoint, plan_upload, upload,
)

Row = Tuple[str, str, str]  # (arch.tag, outcome, detail)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('originals', type=Path, help="folder of the authors' downloaded checkpoints")
    parser.add_argument('out_root', type=Path, help='one converted folder per tag is written here')
    parser.add_argument('--map', type=Path, help='JSON {"arch.tag": "file"} for files not named as in the manifest')
    parser.add_argument('--only', default='*', help="wildcard over the tags, e.g. 'pyconv*' (default all)")
    parser.add_argument('--no-macs', action='store_true', help='leave the fvcore MAC counts out of the cards')
    parser.add_argument('--push', action='store_true', help='upload every converted folder to its manifest repo')
    parser.add_argument('--dry-run', action='store_true', help='with --push: list the uploads, no network')
    parser.add_argument('--accept-hosting-note', action='append', default=[], metavar='ARCH.TAG',
                        help='push this tag although its manifest entry restricts hosting (read the note first)')
    args = parser.parse_args(argv)
    if args.dry_run and not args.push:
        parser.error('--dry-run only applies to --push')
    return args


def read_map(path: Optional[Path], manifest: Dict[str, Any]) -> Dict[str, str]:
    if path is None:
        return {}
    mapping = json.loads(path.read_text(encoding='utf-8'))
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise TricksError(f'{path}: expected a JSON object {{"arch.tag": "file"}}')
    unknown = sorted(set(mapping) - set(manifest))
    if unknown:
        raise TricksError(f"{path}: not in the weights manifest: {', '.join(unknown)}")
    return mapping


def find_original(name: str, entry: Dict[str, Any], originals: Path, mapping: Dict[str, str]) -> Tuple[
        Optional[Path], str]:
    """The tag's downloaded file, or None and what is missing."""
    if name in mapping:
        path = originals / mapping[name]  # an absolute mapped path replaces `originals`
        return (path, '') if path.is_file() else (None, f'{path} (from --map) does not exist')
    if entry['original_filename'] is None:
        return None, f"the authors' file name is unknown: give it with --map; download: {entry['download_url']}"
    path = originals / entry['original_filename']
    return (path, '') if path.is_file() else (None, f"no {path}; download: {entry['download_url']}")


def publish_tag(name: str, entry: Dict[str, Any], original: Optional[Path], args: argparse.Namespace) -> List[Row]:
    """Convert (unless converted before) and push one tag; returns its report rows."""
    out = args.out_root / name
    if (out / RECORD_FILE).is_file():
        rows = [(name, 'kept', f'{out} was converted before')]
    else:
        try:
            convert_checkpoint(name, original, out, count_macs=not args.no_macs)
        except TricksError as e:
            return [(name, 'failed', str(e))]
        rows = [(name, 'converted', str(out))]
    if args.push:
        try:
            plan = plan_upload(out, entry['hf_hub_id'], accept_hosting_note=name in args.accept_hosting_note)
            if args.dry_run:
                files = ', '.join(file for file, _ in plan.files)
                rows.append((name, 'dry run', f'would upload {files} to {plan.url}'))
            else:
                rows.append((name, 'pushed', upload(plan)))
        except HostingRestrictedError as e:
            rows.append((name, 'not pushed', str(e)))
        except TricksError as e:
            rows.append((name, 'failed', str(e)))
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    manifest = load_manifest()
    try:
        mapping = read_map(args.map, manifest)
    except TricksError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    rows: List[Row] = []
    for name in sorted(fnmatch.filter(manifest, args.only)):
        entry = manifest[name]
        if not entry['hf_hub_id'].startswith(PUBLISHING_ORG + '/'):
            rows.append((name, 'not ours', f"loads {entry['hf_hub_id']}: nothing to publish"))
            continue
        original, missing = find_original(name, entry, args.originals, mapping)
        if original is None and not (args.out_root / name / RECORD_FILE).is_file():
            rows.append((name, 'missing', missing))
            continue
        for row in publish_tag(name, entry, original, args):
            rows.append(row)
            print(f'{row[0]}: {row[1]}: {row[2]}', flush=True)  # progress: conversions take a while

    print('\nreport:')
    width = max((len(name) for name, _, _ in rows), default=0)
    for name, outcome, detail in rows:
        print(f'  {name:<{width}}  {outcome:<10}  {detail}')
    outcomes = [outcome for _, outcome, _ in rows]
    print('  ' + ', '.join(f'{outcomes.count(o)} {o}' for o in dict.fromkeys(outcomes)))
    return 1 if 'failed' in outcomes else 0


if __name__ == '__main__':
    sys.exit(main())
