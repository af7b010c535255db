"""`timm-tricks push OUT_DIR REPO_ID`: upload a converted folder to the Hugging Face Hub."""
import sys

from ..publishing import format_size, plan_upload, upload


def add_command(subparsers) -> None:
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
