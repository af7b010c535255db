"""Print the README's "Where the weights come from" table from the weights manifest.

    python scripts/weights_table.py > /tmp/weights.md
"""
from urllib.parse import urlsplit

from timm_tricks.weights import ManifestEntry, load_manifest

# how the README names each host of the authors' downloads
HOSTS = {
    'drive.google.com': 'Google Drive',
    'antialiased-cnns.s3.us-east-2.amazonaws.com': 'Amazon S3',
    'download.openmmlab.com': 'OpenMMLab',
    'download.pytorch.org': 'pytorch.org',
}


def host_name(url: str) -> str:
    host = urlsplit(url).hostname or url
    return 'OneDrive (SharePoint)' if host.endswith('.sharepoint.com') else HOSTS.get(host, host)


def checksum_known(entry: ManifestEntry) -> str:
    if entry.checksum_digits is None:
        return 'no (none published)'
    if len(entry.checksum_digits) == 64:
        return 'yes (full sha256)'
    return f'yes (sha256 prefix {entry.checksum_digits})'


def main() -> None:
    print('| tag | Hub repo | original download | licence | checksum known |')
    print('|---|---|---|---|---|')
    for name, entry in sorted(load_manifest().items()):
        print(f'| {name} | `{entry.hf_hub_id}` | [{host_name(entry.download_url)}]({entry.download_url}) | '
              f'{entry.license} | {checksum_known(entry)} |')


if __name__ == '__main__':
    main()
