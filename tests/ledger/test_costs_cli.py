"""``pinfactory costs``: spend by unit, user, member and tag, since a date, as JSON or CSV."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from test_chain import entry, events, team_file
from typer.testing import CliRunner

from pinfactory.cli import app
from pinfactory.ledger import open_ledger

runner = CliRunner()


async def fill(location: str) -> None:
    ledger = open_ledger(location)
    await ledger.open()
    try:
        for i, unit in enumerate(["sales", "sales", "support"]):
            await ledger.record(entry(f"req_{i}", unit), events(f"req_{i}"))
    finally:
        await ledger.close()


def test_costs_by_group_since_a_date_as_json_and_csv(location: str, tmp_path: Path) -> None:
    asyncio.run(fill(location))
    team = str(team_file(tmp_path, location))
    by_unit = runner.invoke(app, ["costs", "--team", team, "--by", "unit", "--json"])
    assert by_unit.exit_code == 0, by_unit.output
    spend = {r["key"]: r for r in json.loads(by_unit.stdout)["unit"]}
    assert spend["sales"]["cost_usd"] == "0.02" and spend["support"]["requests"] == 1
    tags = runner.invoke(app, ["costs", "--team", team, "--by", "tag", "--csv"])
    assert tags.stdout.splitlines() == [
        "tag,requests,errors,input_tokens,output_tokens,cost_usd",
        "q2,3,0,9,15,0.03",
    ]
    mine = runner.invoke(
        app, ["costs", "--team", team, "--by", "user", "--unit", "support", "--json"]
    )
    assert [r["requests"] for r in json.loads(mine.stdout)["user"]] == [1]
    later = runner.invoke(app, ["costs", "--team", team, "--since", "2999-01-01", "--json"])
    assert json.loads(later.stdout) == {"unit": [], "member": []}
    bad = runner.invoke(app, ["costs", "--team", team, "--since", "last week"])
    assert bad.exit_code == 1 and "'since' must be a date" in bad.output
    wrong = runner.invoke(app, ["costs", "--team", team, "--by", "planet"])
    assert wrong.exit_code == 1 and "'by' must be one of" in wrong.output
