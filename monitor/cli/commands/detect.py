"""`keywatch check-rules`, `keywatch train` and `keywatch eval`: detection's commands."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("check-rules")
    def check_rules(rules_dir: Path = typer.Argument(Path("rules"), help="folder of *.yaml")
                    ) -> None:
        """Validate every rule file in a folder; report every error with file:line at once."""
        from monitor.detect.rules import RuleError, load_rules

        try:
            rules = load_rules(rules_dir)
        except RuleError as exc:
            for p in exc.problems:
                typer.echo(p, err=True)
            typer.echo(f"{len(exc.problems)} error(s)", err=True)
            raise typer.Exit(code=1) from None
        typer.echo(f"{rules_dir}: {len(rules)} rules OK")

    @app.command()
    def train(
        default: bool = typer.Option(False, "--default", help="rebuild models/default.skops"),
        config: Path | None = typer.Option(None, help="config TOML (prefixes, whitelists)"),
        store: Path | None = typer.Option(None, help="SQLite store with normal history"),
        account: str | None = typer.Option(None, help="train on this account's history"),
        since: int | None = typer.Option(None, help="start of the normal period (ms)"),
        until: int | None = typer.Option(None, help="end of the normal period (ms)"),
        out: Path = typer.Option(Path("models/default.skops"), help="model file to write"),
        seed: int = typer.Option(7, help="random seed (fixed for reproducibility)"),
    ) -> None:
        """Fit the IsolationForest on normal traffic; write the model and its JSON card."""
        from monitor.detect.forest import ForestModel
        from monitor.world.evaluate.suite import DEFAULT_MODEL, train_default

        if default:
            m = train_default(DEFAULT_MODEL)
            typer.echo(f"wrote {DEFAULT_MODEL} (threshold {m.threshold:.4f}, "
                       f"{m.card['training']['windows']} windows)")
            return
        if store is None or config is None:
            typer.echo("pass --default, or --store and --config (optionally --account, "
                       "--since/--until for the normal period)", err=True)
            raise typer.Exit(code=2)
        from monitor.config import load_config
        from monitor.features import FeatureContext, windows
        from monitor.store import SQLiteStore

        cfg = load_config(config)
        df = SQLiteStore(store).load_events(since=since, until=until, account=account)
        if df.empty:
            typer.echo("no events in that range; nothing to train on", err=True)
            raise typer.Exit(code=1)
        w = windows(df, FeatureContext.from_config(cfg))
        m = ForestModel.fit(w, seed=seed, source=f"store {store} account {account or 'all'}")
        m.save(out)
        typer.echo(f"wrote {out} (threshold {m.threshold:.4f}, {len(w)} windows)")

    @app.command("eval")
    def eval_(
        rules_dir: Path = typer.Option(Path("rules"), help="rules folder"),
        model: Path | None = typer.Option(Path("models/default.skops"), help="forest model"),
        keys: int = typer.Option(6), days: float = typer.Option(3.0),
        normal_days: float = typer.Option(2.0), seed: int = typer.Option(1),
        events: Path | None = typer.Option(None, help="labelled run: SQLite store to replay"),
        truth: Path | None = typer.Option(None, help="labelled run: GroundTruth JSON"),
        config: Path | None = typer.Option(None, help="labelled run: its config TOML"),
        scenario: list[str] = typer.Option(
            [], help="shipped simulator scenario(s) to run through the real service and score "
                     "(repeatable; e.g. full, normal, one_hour)"),
        speed: float = typer.Option(120.0, help="clock speed for --scenario runs"),
        out: Path = typer.Option(Path("runs"), help="where --scenario runs keep their files"),
        json_out: Path | None = typer.Option(None, "--json", help="also write the report here"),
    ) -> None:
        """Catches, delays and false findings per detector and attack type; rules / forest /
        both side by side. Default: the synthetic suite. --scenario: run shipped simulator
        scenarios through the real service (alerts and live findings scored too). --events:
        replay a labelled store run.

        Example: keywatch eval --scenario full --scenario normal --json eval.json"""
        from monitor.detect.forest import ForestModel, ModelMismatch
        from monitor.world.evaluate.score import render
        from monitor.world.evaluate.suite import modes, run_suite

        forest = None
        if model is not None:
            try:
                forest = ForestModel.load(model)
            except ModelMismatch as exc:
                typer.echo(f"{exc} (forest columns skipped)", err=True)
        if scenario:
            import asyncio

            from monitor.world.evaluate.realpath import run_scenario

            runs: dict[str, object] = {}
            for name in scenario:
                typer.echo(f"running scenario {name} at {speed:g}x through the real service...",
                           err=True)
                result = asyncio.run(run_scenario(
                    name, rules_dir=rules_dir, forest=forest, speed=speed, seed=seed, out=out,
                    say=lambda m: typer.echo(m, err=True)))
                info = result.pop("run")
                runs[f"{name} (real path, {info['events']} events, {info['run_dir']})"] = result
            report = {"params": {"scenarios": scenario, "speed": speed, "seed": seed},
                      "runs": runs}
        elif events is not None:
            if truth is None or config is None:
                typer.echo("--events needs --truth and --config", err=True)
                raise typer.Exit(code=2)
            from monitor.config import load_config
            from monitor.store import SQLiteStore
            from monitor.world.groundtruth import GroundTruth

            gt = GroundTruth.load(truth)
            cfg = load_config(config)
            df = SQLiteStore(events).load_events()
            report = {"params": {"events": str(events), "truth": str(truth)},
                      "runs": {gt.scenario: modes(df, gt, cfg, rules_dir, forest)}}
        else:
            report = run_suite(rules_dir, forest, keys=keys, days=days,
                               normal_days=normal_days, seed=seed)
        typer.echo(render(report))
        if json_out is not None:
            json_out.write_text(json.dumps(report, indent=2, default=str) + "\n")
            typer.echo(f"wrote {json_out}")
