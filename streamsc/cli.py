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


if __name__ == "__main__":  # pragma: no cover
    main()
