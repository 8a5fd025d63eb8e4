"""moto's server with a spot price of the test's choosing.

moto answers DescribeSpotPriceHistory with one fixed record per type and zone: 0.00001
USD/h, dated 2006. At that price the minutes an end-to-end session runs cost less than the
millionth of a dollar status.yml shows, so a cost of zero could not be told from a right
one. This server changes only the price of those records (every type and zone, same
date); everything else is moto's own.

    python priced_moto.py PRICE [moto.server options]
"""

from __future__ import annotations

import sys
from decimal import Decimal

from moto.ec2.responses.spot_instances import SpotInstances
from moto.server import main


def serve(price: str, argv: list[str]) -> None:
    Decimal(price)  # a price, or an error before the server starts
    moto_answer = SpotInstances.describe_spot_price_history

    def describe_spot_price_history(self):
        answer = moto_answer(self)
        for record in answer.result["SpotPriceHistory"]:
            record["SpotPrice"] = price
        return answer

    SpotInstances.describe_spot_price_history = describe_spot_price_history
    main(argv)


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
