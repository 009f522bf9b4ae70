"""A local strict fake of the xAI gRPC API (image, video, chat) for storyc's xai backend tests.

Import from test modules (tests/ is on sys.path under pytest's default import mode):

    from fake_xai import FakeXai
    from fake_xai.fixtures import fake_xai, xai_env  # pytest fixtures
"""

from .rules import decode_data_uri
from .service import FAULTS, METHODS, Bill, FakeXai, Recorded

__all__ = ["FAULTS", "METHODS", "Bill", "FakeXai", "Recorded", "decode_data_uri"]
