"""Zoo plots: reported top-1 against a cost (GMACs, latency). matplotlib is optional, imported only here."""
from pathlib import Path
from typing import Sequence

from .report import Row

PLOTS_EXTRA_HINT = 'pip install "timm-tricks[plots]"'


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_top1(rows: Sequence[Row], x_column: str, x_label: str, path: Path, title: str) -> Path:
    """Scatter of `reported_top1` against `x_column`, one colour per family; baselines (rows with `baseline`
    true, whose top-1 we do not know) are vertical dashed lines at their x. Writes a PNG to `path`. Needs
    matplotlib (`matplotlib_available`)."""
    # Figure + the Agg canvas directly: pyplot would change the global backend of the user's session.
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(9, 6), layout='constrained')
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ours = [r for r in rows if not r['baseline']]
    baselines = [r for r in rows if r['baseline']]
    families = sorted({r['family'] for r in ours})
    palette = colormaps['tab10' if len(families) <= 10 else 'tab20']
    handles = []
    for i, family in enumerate(families):
        points = [r for r in ours if r['family'] == family and r['reported_top1'] is not None]
        colour = palette(i % palette.N)
        handles.append(Line2D([], [], marker='o', linestyle='', color=colour, label=family))
        ax.scatter([r[x_column] for r in points], [r['reported_top1'] for r in points], color=colour, zorder=3)
        for r in points:
            ax.annotate(r['model'], (r[x_column], r['reported_top1']), fontsize=6, xytext=(3, 3),
                        textcoords='offset points')
    for r in baselines:
        ax.axvline(r[x_column], color='0.4', linestyle='--', linewidth=0.8)
        ax.annotate(r['model'], (r[x_column], 0.02), xycoords=('data', 'axes fraction'), rotation=90, fontsize=7,
                    xytext=(2, 0), textcoords='offset points', color='0.3')
    if baselines:
        handles.append(Line2D([], [], color='0.4', linestyle='--', label='timm baseline (top-1 not ours to report)'))
    if all(r[x_column] > 0 for r in rows):
        ax.set_xscale('log')
    missing = sum(r['reported_top1'] is None for r in ours)
    if missing:
        ax.text(0.99, 0.01, f'{missing} of {len(ours)} models have no reported top-1 and are not shown',
                transform=ax.transAxes, ha='right', va='bottom', fontsize=8, color='0.3')
    ax.set_xlabel(x_label)
    ax.set_ylabel('reported ImageNet-1k top-1 (%)')
    ax.set_title(title, fontsize=10)
    ax.grid(True, which='both', linewidth=0.3)
    if handles:
        ax.legend(handles=handles, fontsize=8, loc='upper left')
    fig.savefig(path, dpi=120)
    return path
