"""`keywatch notebook ALERT_ID`: run the incident notebook for one alert and open the result."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import webbrowser
from pathlib import Path

import typer

# What the notebooks extra brings (pyproject.toml); ipykernel runs the cells, matplotlib plots.
NOTEBOOK_MODULES = ("nbformat", "nbclient", "ipykernel", "matplotlib")


def register(app: typer.Typer) -> None:
    @app.command()
    def notebook(
        alert_id: str = typer.Argument(..., help="the alert id from the message (kw-...)"),
        db: Path | None = typer.Option(None, "--db", help="event store (default: the config's "
                                       "store_path)"),
        config: Path = typer.Option(Path("keywatch.toml"), "--config", "-c",
                                    help="TOML config (labels, whitelists; no secret is read)"),
        html: Path | None = typer.Option(None, "--html", help="also render to this HTML file "
                                         "(and do not open anything)"),
        out_dir: Path = typer.Option(Path("runs"), "--out", help="where the executed notebook "
                                     "is written (git-ignored)"),
        open_: bool = typer.Option(True, "--open/--no-open", help="open the result in Jupyter "
                                   "(or, without Jupyter, as HTML in a browser)"),
    ) -> None:
        """Execute notebooks/incident.ipynb for ALERT_ID; write it under --out and open it, or
        render it to --html. Needs the notebooks extra: pip install 'keywatch[notebooks]'.

        Example (the command every alert prints): keywatch notebook kw-1a2b3c4d5e6f
        -c /etc/keywatch/keywatch.toml --db /var/lib/keywatch/keywatch.db --html incident.html
        """
        try:
            import nbformat

            from monitor.tools.investigate.run import INCIDENT, execute, to_html
            missing = [m for m in NOTEBOOK_MODULES if importlib.util.find_spec(m) is None]
        except ImportError as exc:
            missing = [exc.name or str(exc)]
        if missing:
            typer.echo(f"error: the incident notebook needs {', '.join(missing)}, which "
                       f"Keywatch installs only with its notebooks extra: "
                       f"pip install 'keywatch[notebooks]'", err=True)
            raise typer.Exit(code=1)

        from monitor.tools.investigate.incident import InvestigateError, open_store_ro, read_config

        try:
            cfg = read_config(config)
            store_path = db or Path(cfg.store_path if cfg else "keywatch.db")
            store = open_store_ro(store_path)
            found = store.load_alert(alert_id)
            store.close()
        except InvestigateError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(code=1) from None
        if found is None:
            typer.echo(f"error: alert {alert_id!r} is not in {store_path}; list recent ones with "
                       "`keywatch alerts`", err=True)
            raise typer.Exit(code=1)
        if html is not None:
            try:
                import nbconvert  # noqa: F401
            except ImportError:
                typer.echo("error: --html needs nbconvert: pip install 'keywatch[notebooks]'",
                           err=True)
                raise typer.Exit(code=1) from None
        params = {"DB": str(store_path.resolve()), "ALERT_ID": alert_id,
                  "CONFIG": str(config.resolve()) if cfg else None}
        typer.echo(f"running the incident notebook for {alert_id} ...", err=True)
        try:
            nb = execute(INCIDENT, params)
        except Exception as exc:  # a cell failed: show its error, not a kernel traceback
            typer.echo(f"error: the notebook failed: {str(exc)[-2000:]}", err=True)
            raise typer.Exit(code=1) from None
        # the executed notebook and its HTML hold the account's evidence: owner-only files
        from monitor.tools.investigate.files import write_private

        path = write_private(out_dir / f"incident-{alert_id}.ipynb", nbformat.writes(nb))
        typer.echo(f"wrote {path}")
        if html is not None:
            write_private(html, to_html(nb))
            typer.echo(f"wrote {html}")
            return
        jupyter = shutil.which("jupyter-lab") or shutil.which("jupyter-notebook")
        if open_ and jupyter:
            subprocess.Popen([jupyter, str(path)])  # a path we just wrote
        elif open_:
            page = path.with_suffix(".html")
            write_private(page, to_html(nb))
            typer.echo(f"no Jupyter installed: wrote {page} instead")
            webbrowser.open(page.resolve().as_uri())
