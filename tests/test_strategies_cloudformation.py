"""``edgeproof strategies export-cloudformation``: the template passes cfn-lint and says what the strategy says.

cfn-lint (the ``test`` extra) checks each template against CloudFormation's resource schemas: every
built-in strategy, a user TOML strategy of each mode, and the option variants (Origin Shield, no
auto-publish). A template broken on purpose must fail it, so the lint is known to be looking. The cache
policy's key is compared with the strategy's own declaration, the inlined function with
``export-cf-function``'s output (both through the CLI), the failover codes with the edge emulator's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from edgeproof.analytics.replay import ACCEPT_BY_CLASS
from edgeproof.analytics.strategies import get_strategy, list_strategies
from edgeproof.analytics.strategies.cloudformation import DEFAULT_TTL_SECONDS, cloudformation_template
from edgeproof.edge import origin_group

from edgeproof import cloudfront

EDGEPROOF = Path(sys.executable).with_name("edgeproof")
CFN_LINT = Path(sys.executable).with_name("cfn-lint")
USER_CANONICAL = """\
name = "user_canonical"
description = "a user's canonical strategy"
mode = "canonical"
path_case = "lower"

[canonical]
breakpoints = [100, 300, 1000]
quality_buckets = [40, 75]
formats = ["webp", "jpeg"]
on_invalid = "fallback"
"""
USER_QUERY = """\
name = "user_query"
description = "a user's query strategy: tracking dropped by name and prefix"
mode = "query"

[params]
drop = ["fbclid", "gclid", "utm_*"]
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EDGEPROOF), "strategies", *args], capture_output=True, text=True, timeout=120)


def lint(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    assert CFN_LINT.exists(), "cfn-lint is in the test extra: pip install -e '.[test]'"
    return subprocess.run([str(CFN_LINT), *map(str, paths)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("user")
    files = []
    for name, text in (("user_canonical", USER_CANONICAL), ("user_query", USER_QUERY)):
        path = folder / f"{name}.toml"
        path.write_text(text)
        files.append(path)
    return files


def resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [r for r in template["Resources"].values() if r["Type"] == kind]


def key_config(template: dict[str, Any]) -> dict[str, Any]:
    (policy,) = resources(template, "AWS::CloudFront::CachePolicy")
    return dict(policy["Properties"]["CachePolicyConfig"])


def test_every_template_passes_cfn_lint(tmp_path: Path, user_files: list[Path]) -> None:
    written = []
    variants: list[tuple[str, dict[str, Any]]] = [(n, {}) for n in [*list_strategies(), *map(str, user_files)]]
    variants += [("aggressive", {"origin_shield": "eu-west-1", "ttl": 7 * 86400, "store_bucket": "my-derivatives",
                                 "transformer_domain": "transformer.example.com"}),
                 ("canonical", {"auto_publish": False})]
    for i, (name, options) in enumerate(variants):
        out = tmp_path / f"{i}-{Path(name).stem}.json"
        out.write_text(cloudformation_template(get_strategy(name), **options).to_json())
        written.append(out)
    through_cli = tmp_path / "cli.json"  # and what the command writes, with every option
    done = cli("export-cloudformation", "aggressive", "-o", str(through_cli), "--origin-shield", "eu-west-1",
               "--ttl", "7d", "--store-bucket", "my-derivatives", "--transformer-domain", "t.example.com",
               "--no-auto-publish")
    assert done.returncode == 0, done.stderr
    assert json.loads(through_cli.read_text())["Parameters"]["AutoPublish"]["Default"] == "false"
    written.append(through_cli)
    result = lint(written)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = json.loads(written[-1].read_text())  # a template broken on purpose must fail the lint
    key_config(broken)["ParametersInCacheKeyAndForwardedToOrigin"]["QueryStringsConfig"]["QueryStringBehavior"] = "some"
    bad = tmp_path / "broken.json"
    bad.write_text(json.dumps(broken))
    assert lint([bad]).returncode != 0


def test_the_cache_key_is_the_strategys(user_files: list[Path]) -> None:
    for name in [*list_strategies(), *map(str, user_files)]:
        strategy = get_strategy(name)
        key = key_config(cloudformation_template(strategy).template)["ParametersInCacheKeyAndForwardedToOrigin"]
        assert key["HeadersConfig"] == {"HeaderBehavior": "none"}
        assert key["CookiesConfig"] == {"CookieBehavior": "none"}
        query = key["QueryStringsConfig"]
        params = strategy.config.params
        if strategy.config.mode == "canonical":  # the function moves everything into the path
            assert query == {"QueryStringBehavior": "none"}, name
        elif params.allowlist is not None:
            assert query["QueryStringBehavior"] == "whitelist"
            assert sorted(query["QueryStrings"]) == sorted(set(params.allowlist)), name
        elif params.drop:
            assert query == {"QueryStringBehavior": "allExcept",
                             "QueryStrings": [n for n in params.drop if not n.endswith("*")]}, name
        else:
            assert query == {"QueryStringBehavior": "all"}, name


def test_no_header_in_the_key_is_what_the_strategies_do(user_files: list[Path]) -> None:
    """HeaderBehavior none is right: a query-mode key never changes with Accept, and a canonical one
    does only through the path the function writes (no query string left)."""
    url = "/images/a.jpg", "Width=600&format=auto&q=80&utm_source=x"
    for name in [*list_strategies(), *map(str, user_files)]:
        strategy = get_strategy(name)
        keys = {strategy.apply("GET", *url, {"accept": a}).cache_key for a in ACCEPT_BY_CLASS}
        if strategy.config.mode == "query":
            assert len(keys) == 1, name
        else:
            assert len(keys) > 1 and not any("?" in k for k in keys), name


def test_ttls_function_and_origin_group() -> None:
    template = cloudformation_template(get_strategy("aggressive"), origin_shield="us-east-2").template
    config = key_config(template)
    assert config["DefaultTTL"] == config["MaxTTL"] == config["MinTTL"] == DEFAULT_TTL_SECONDS == 30 * 86400
    query_mode = key_config(cloudformation_template(get_strategy("passthrough"), ttl=7 * 86400).template)
    assert (query_mode["DefaultTTL"], query_mode["MaxTTL"], query_mode["MinTTL"]) == (7 * 86400, 7 * 86400, 0)
    assert not resources(cloudformation_template(get_strategy("passthrough")).template, "AWS::CloudFront::Function")

    (dist,) = resources(template, "AWS::CloudFront::Distribution")
    d = dist["Properties"]["DistributionConfig"]
    (group,) = d["OriginGroups"]["Items"]
    codes = group["FailoverCriteria"]["StatusCodes"]
    assert set(codes["Items"]) == cloudfront.FAILOVER_STATUSES and codes["Quantity"] == len(codes["Items"])
    assert origin_group.FAILOVER_STATUSES is cloudfront.FAILOVER_STATUSES  # the emulator's, one definition
    primary, secondary = (m["OriginId"] for m in group["Members"]["Items"])
    origins = {o["Id"]: o for o in d["Origins"]}
    assert origins[primary]["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert origins[primary]["OriginAccessControlId"] == {"Fn::GetAtt": ["StoreOriginAccessControl", "Id"]}
    assert "CustomOriginConfig" in origins[secondary]
    assert all(o["OriginShield"] == {"Enabled": True, "OriginShieldRegion": "us-east-2"} for o in origins.values())
    behavior = d["DefaultCacheBehavior"]
    assert behavior["TargetOriginId"] == group["Id"]
    assert behavior["FunctionAssociations"]["Fn::If"][1] == [
        {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": ["ViewerRequestFunction", "FunctionARN"]}}]
    assert resources(template, "AWS::CloudFront::OriginAccessControl")
    plain = cloudformation_template(get_strategy("aggressive")).template
    assert all("OriginShield" not in o for o in resources(plain, "AWS::CloudFront::Distribution")[0]
               ["Properties"]["DistributionConfig"]["Origins"])


def test_the_inlined_code_is_the_exported_function(tmp_path: Path, user_files: list[Path]) -> None:
    for name in ["aggressive", "canonical", "breakpoints", str(user_files[0])]:
        exported = cli("export-cf-function", name)
        assert exported.returncode == 0, exported.stderr
        out = tmp_path / "t.json"
        assert cli("export-cloudformation", name, "-o", str(out)).returncode == 0
        (function,) = resources(json.loads(out.read_text()), "AWS::CloudFront::Function")
        assert function["Properties"]["FunctionCode"] == exported.stdout
        assert function["Properties"]["FunctionConfig"]["Runtime"] == "cloudfront-js-2.0"


def test_bad_options_exit_2() -> None:
    bad_region = cli("export-cloudformation", "aggressive", "--origin-shield", "Ohio")
    assert bad_region.returncode == 2 and "not an AWS region code" in bad_region.stderr
    assert cli("export-cloudformation", "aggressive", "--ttl", "0").returncode == 2
    notes = cli("export-cloudformation", "allowlist")
    assert notes.returncode == 0 and "default quota is 10 per cache policy" in notes.stderr
