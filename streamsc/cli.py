"""The ``streamsc`` command line."""

import click


@click.group()
@click.version_option(package_name="streamsc")
def main():
    """Online, differentiable sparse coding (Bradley & Bagnell, NIPS 2008)."""


@main.command()
@click.option("--out", default="streamsc-out", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the JSON results and the pictures.")
@click.option("--n-components", default=96, show_default=True, type=click.IntRange(min=1),
              help="Atoms in the basis.")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(min=1),
              help="Unlabelled passes to learn the basis.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--quick", is_flag=True, help="500 digits, one unlabelled pass (a smoke test).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def demo(out, n_components, epochs, seed, quick, no_progress):
    """Stream scikit-learn's bundled digits through sparse coders and a classifier on their
    codes; print progressive accuracy for raw pixels, L1, KL and KL + backprop codes and write
    a picture of the learned atoms."""
    from . import demo as demo_module

    report = demo_module.run(out, n_components=n_components, epochs=epochs, seed=seed,
                             quick=quick, progress=not no_progress)
    click.echo("")
    click.echo(f"{report['n_examples']} digits, {report['n_components']} atoms, "
               f"{report['unlabelled_epochs']} unlabelled pass(es), "
               f"{report['seconds']} s")
    click.echo(demo_module.table(report))
    click.echo(f"\nwrote {out}/digits_demo.json, {out}/digits_atoms.png, {out}/digits_curves.png")


@main.command()
@click.argument("table", type=click.Choice(["table1", "table2", "table5", "table6"]))
@click.option("--quick", is_flag=True, help="Tiny subsets (a smoke test, same code path).")
@click.option("--data-dir", default=None, type=click.Path(file_okay=False),
              help="Data directory (default: $STREAMSC_DATA).")
@click.option("--out", default="reproduce-out", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the tables, JSON and plots.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
def reproduce(table, quick, data_dir, out, seed, no_progress):
    """Reproduce one of the paper's tables on the real data (see docs/results.md)."""
    import importlib

    module = importlib.import_module(f"streamsc.reproduce.{table}")
    report = module.run(data_dir, out, quick=quick, seed=seed, progress=not no_progress)
    click.echo("")
    click.echo((__import__("pathlib").Path(out) / f"{table}.md").read_text())
    click.echo(f"wrote {out}/{table}.md, {out}/{table}.json and plots "
               f"({report['compute']['wall_seconds']} s)")


if __name__ == "__main__":  # pragma: no cover
    main()
