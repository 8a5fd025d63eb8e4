"""Pure placement decisions: no AWS, no mocks."""

from datetime import datetime, timezone

import pytest
from ansible_collections.rlops.fleet.plugins.module_utils import ec2_placement as ep
from ansible_collections.rlops.fleet.plugins.module_utils.ec2_placement import Candidate


def _price(kind, zone, price, hour=12):
    return {"InstanceType": kind, "AvailabilityZone": zone, "SpotPrice": price,
            "Timestamp": datetime(2026, 11, 22, hour, tzinfo=timezone.utc)}


def test_latest_prices_keep_the_newest_record_per_type_and_zone():
    records = [
        _price("g4dn.xlarge", "us-east-1a", "0.30", hour=10),
        _price("g4dn.xlarge", "us-east-1a", "0.21", hour=11),
        _price("g4dn.xlarge", "us-east-1b", "0.25", hour=9),
        {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1a"},  # no price: skipped
        {"InstanceType": "g5.xlarge", "AvailabilityZone": "us-east-1b", "SpotPrice": "0.4"},
    ]
    assert ep.latest_prices(records) == {
        ("g4dn.xlarge", "us-east-1a"): "0.21",
        ("g4dn.xlarge", "us-east-1b"): "0.25",
        ("g5.xlarge", "us-east-1b"): "0.4",
    }


def test_rank_candidates_cheapest_first_across_types_and_zones():
    prices = {("g4dn.xlarge", "a"): "0.30", ("g4dn.xlarge", "b"): "0.20",
              ("g5.xlarge", "a"): "0.25", ("g5.xlarge", "b"): "0.50"}
    ranked = ep.rank_candidates(prices, ["g4dn.xlarge", "g5.xlarge"], ["a", "b"])
    assert [(c.instance_type, c.availability_zone, c.price) for c in ranked] == [
        ("g4dn.xlarge", "b", "0.20"),
        ("g5.xlarge", "a", "0.25"),
        ("g4dn.xlarge", "a", "0.30"),
        ("g5.xlarge", "b", "0.50"),
    ]


def test_rank_candidates_ties_keep_type_then_zone_order():
    prices = {(t, z): "0.10" for t in ("x.large", "y.large") for z in ("a", "b")}
    ranked = ep.rank_candidates(prices, ["y.large", "x.large"], ["b", "a"])
    assert [(c.instance_type, c.availability_zone) for c in ranked] == [
        ("y.large", "b"), ("y.large", "a"), ("x.large", "b"), ("x.large", "a")]


def test_rank_candidates_compares_prices_as_numbers_and_puts_unknown_last():
    prices = {("t", "a"): "0.9", ("t", "b"): "0.10"}
    ranked = ep.rank_candidates(prices, ["t"], ["c", "a", "b"])
    assert [c.availability_zone for c in ranked] == ["b", "a", "c"]
    assert ranked[-1].price is None


def test_rank_candidates_leaves_out_pairs_the_region_does_not_offer():
    ranked = ep.rank_candidates({}, ["g5.xlarge", "t3.micro"], ["a", "b"],
                                offered={("g5.xlarge", "b"), ("t3.micro", "a")})
    assert [(c.instance_type, c.availability_zone) for c in ranked] == [
        ("g5.xlarge", "b"), ("t3.micro", "a")]


def test_split_by_max_price_skips_known_prices_above_the_limit_only():
    cands = [Candidate("t", "a", "0.2"), Candidate("t", "b", "0.6"), Candidate("t", "c")]
    keep, skip = ep.split_by_max_price(cands, "0.5")
    assert [c.availability_zone for c in keep] == ["a", "c"]
    assert [c.availability_zone for c in skip] == ["b"]
    assert ep.split_by_max_price(cands, None) == (cands, [])


def test_zones_default_to_the_region_and_a_single_zone_constraint_wins():
    region = ["us-east-1a", "us-east-1b", "us-east-1c"]
    assert ep.zones_to_try(region, None, None) == (region, None)
    assert ep.zones_to_try(region, ["us-east-1c", "us-east-1a"], None) == (
        ["us-east-1c", "us-east-1a"], None)
    # The session's volume lives in 1b: no other zone may be tried.
    assert ep.zones_to_try(region, ["us-east-1a"], "us-east-1b") == (["us-east-1b"], None)


def test_zones_not_in_the_region_are_named():
    zones, problem = ep.zones_to_try(["us-east-1a"], ["us-east-1a", "eu-west-1a"], None,
                                     "us-east-1")
    assert zones == []
    assert problem == "availability zone eu-west-1a is not in us-east-1 (zones there: us-east-1a)"
    assert ep.zones_to_try(["us-east-1a"], None, "us-east-1z")[1].startswith(
        "availability zone us-east-1z is not in")


@pytest.mark.parametrize("code", ["InsufficientInstanceCapacity", "MaxSpotInstanceCountExceeded",
                                  "SpotMaxPriceTooLow", "InsufficientCapacity", "Unsupported"])
def test_capacity_errors_move_to_the_next_candidate(code):
    assert ep.after_launch_error(code) == "next"


@pytest.mark.parametrize("code", ["InvalidAMIID.NotFound", "UnauthorizedOperation",
                                  "InvalidParameterValue", "InvalidKeyPair.NotFound", ""])
def test_other_errors_fail_the_task(code):
    assert ep.after_launch_error(code) == "fail"


@pytest.mark.parametrize("code, step", [
    (None, "wait"), ("pending-evaluation", "wait"), ("pending-fulfillment", "wait"),
    ("fulfilled", "wait"), ("capacity-not-available", "next"), ("price-too-low", "next"),
    ("capacity-oversubscribed", "next"), ("instance-terminated-no-capacity", "next"),
    ("bad-parameters", "fail"), ("canceled-before-fulfillment", "fail"),
    ("instance-terminated-by-user", "fail"),
])
def test_request_status_codes_map_to_wait_next_or_fail(code, step):
    assert ep.after_request_status(code) == step


def test_spot_options_pairs():
    assert ep.spot_options_error("one-time", "terminate") is None
    assert ep.spot_options_error("persistent", "stop") is None
    assert ep.spot_options_error("persistent", "hibernate") is None
    assert "needs spot_type=persistent" in ep.spot_options_error("one-time", "stop")
    assert "needs spot_type=persistent" in ep.spot_options_error("one-time", "hibernate")
    assert "stop or hibernate" in ep.spot_options_error("persistent", "terminate")


def test_client_token_is_stable_short_and_moves_with_its_inputs():
    cand = Candidate("g4dn.xlarge", "us-east-1a", "0.2")
    token = ep.client_token("cartpole-20261122t051500z", cand, "spot")
    assert token == ep.client_token("cartpole-20261122t051500z", cand, "spot")
    assert len(token) <= 64 and token.isascii()
    assert token.endswith("-g0")
    others = {
        ep.client_token("other-session", cand, "spot"),
        ep.client_token("cartpole-20261122t051500z", Candidate("g4dn.xlarge", "us-east-1b"),
                        "spot"),
        ep.client_token("cartpole-20261122t051500z", cand, "on-demand"),
        ep.client_token("cartpole-20261122t051500z", cand, "spot", generation=1),
    }
    assert token not in others and len(others) == 4
    # The price is not part of the token: it changes between runs.
    assert ep.client_token("s", Candidate("t", "a", "0.1"), "spot") == ep.client_token(
        "s", Candidate("t", "a", "0.9"), "spot")
