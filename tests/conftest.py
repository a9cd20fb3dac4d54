import os

from hypothesis import settings

# Property tests print their falsifying example and a reproduction blob; the "ci" profile is
# deterministic so that a red CI run can be replayed with the same examples.
settings.register_profile("default", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")
