"""`timm-tricks convert ARCH.TAG ORIGINAL_FILE OUT_DIR`: the authors' checkpoint as a Hub-ready folder."""
import sys

from ..publishing import convert_checkpoint, format_size


def add_command(subparsers) -> None:
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
