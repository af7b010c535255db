"""`timm-tricks convert` (the authors' checkpoint -> a Hub-ready folder) and `timm-tricks push` (upload it)."""
import sys

from ..publishing import convert_checkpoint, format_size, plan_upload, upload


def add_commands(subparsers) -> None:
    convert = subparsers.add_parser(
        'convert', help="convert the authors' checkpoint of a tag into a Hub-ready folder",
        description="Checks ORIGINAL_FILE against the weights manifest's checksum, loads it strictly through the "
                    "family's checkpoint filter and writes OUT_DIR (new or empty): model.safetensors, config.json, "
                    'a model card README.md and conversion.json (sha256 of input and outputs).')
    convert.add_argument('name', metavar='ARCH.TAG', help='a tag with weights, e.g. pyconv_resnet50.in1k')
    convert.add_argument('original', metavar='ORIGINAL_FILE', help="the authors' checkpoint as downloaded")
    convert.add_argument('out_dir', metavar='OUT_DIR', help='folder to write (must not exist or be empty)')
    convert.add_argument('--no-macs', action='store_true', help='leave the fvcore MAC count out of the card (faster)')
    convert.set_defaults(handler=_convert)

    push = subparsers.add_parser(
        'push', help='upload a converted folder to the Hugging Face Hub',
        description='Creates REPO_ID if needed and uploads the files `timm-tricks convert` wrote, in one commit. '
                    'The token comes from HF_TOKEN or `hf auth login`.')
    push.add_argument('folder', metavar='OUT_DIR', help='a folder written by `timm-tricks convert`, unmodified')
    push.add_argument('repo_id', metavar='REPO_ID', help='namespace/name, e.g. timm-tricks/pyconv_resnet50.in1k')
    push.add_argument('--dry-run', action='store_true', help='list what would be uploaded where; no network')
    push.add_argument('--accept-hosting-note', action='store_true',
                      help="upload although the manifest restricts hosting (read the note first)")
    push.set_defaults(handler=_push)


def _convert(args) -> int:
    conversion = convert_checkpoint(args.name, args.original, args.out_dir, count_macs=not args.no_macs)
    if conversion.hosting:
        print(f'warning: {conversion.name}: {conversion.hosting}', file=sys.stderr)
    if conversion.checksum:
        verified = f"matches the manifest's {conversion.checksum}"
    else:
        verified = 'the source publishes no checksum: recorded, not verified'
    print(f'{conversion.name}: {args.original} (sha256 {conversion.original_sha256}; {verified}) loaded strictly')
    print(f'wrote {conversion.out_dir}:')
    for path in sorted(conversion.out_dir.iterdir()):
        print(f'  {path.name:<18} {format_size(path.stat().st_size):>9}')
    macs = f', GMACs {conversion.macs / 1e9:.2f}' if conversion.macs is not None else ''
    print(f'params {conversion.params / 1e6:.2f} M{macs}; {conversion.weights_sha256} = sha256 of model.safetensors')
    print(f'next: timm-tricks push {conversion.out_dir} {conversion.hf_hub_id} --dry-run')
    return 0


def _push(args) -> int:
    plan = plan_upload(args.folder, args.repo_id, accept_hosting_note=args.accept_hosting_note)
    if plan.repo_id != plan.converted_for:
        print(f'warning: {plan.folder} was converted for {plan.converted_for}, not {plan.repo_id}', file=sys.stderr)
    if plan.hosting:
        print(f'warning: hosting note accepted: {plan.hosting}', file=sys.stderr)
    print(f"{'would upload' if args.dry_run else 'uploading'} to {plan.url} (model repo, created if missing):")
    for name, size in plan.files:
        print(f'  {name:<18} {format_size(size):>9}')
    if args.dry_run:
        print('dry run: nothing uploaded')
        return 0
    print(f'committed: {upload(plan)}')
    return 0
