"""LoginThrottle: failed sign-ins counted per user name and per client address, in the database.

After ``max_failures`` failures of one name or one address, each further try must wait: ``lockout``
seconds after that failure, doubling with each failure after it, up to an hour. The counts live in
``login_failures`` (keyed by a hash of the name or address), so the limit holds across processes and
restarts; a name's count is forgotten at its next successful sign-in, and any count a quarter of an hour
after its last failure. A try while waiting is refused without looking at the password.
"""

from __future__ import annotations

import math
import time

from quaero.stores.accounts import digest
from quaero.stores.db import Database
from quaero.stores.models import Models

#: Failures older than this (seconds since the last one) no longer count.
FORGET_AFTER = 15 * 60.0
#: The longest wait one more failure can bring.
LONGEST_WAIT = 3600.0


def throttle_keys(name: str, address: str) -> tuple[str, str]:
    """The keys a sign-in attempt counts against: its user name's and its client address's."""
    return digest(f"user:{name.lower()}"), digest(f"address:{address}")


class LoginThrottle:
    """Say how long a sign-in must wait, and count its failures."""

    def __init__(self, database: Database, models: Models, *, max_failures: int, lockout: float) -> None:
        self.database = database
        self.models = models
        self.max_failures = max_failures
        self.lockout = lockout

    def wait(self, keys: tuple[str, ...]) -> float:
        """Seconds until a try on these keys is allowed (0: now)."""
        LoginFailure = self.models.LoginFailure
        until = [row.locked_until for row in LoginFailure.select().where(LoginFailure.key.in_(list(keys)))]
        return max([0.0, *(stamp - time.time() for stamp in until)])

    def failed(self, keys: tuple[str, ...]) -> float:
        """Count one failure on each key; returns the seconds the next try must wait."""
        LoginFailure = self.models.LoginFailure
        now = time.time()
        longest = 0.0
        with self.database.write():
            for key in keys:
                if self.database.is_postgres:  # two failures at once must not both insert the row
                    self.database.execute("SELECT pg_advisory_xact_lock(hashtext(?))", (key,))
                row = LoginFailure.get_or_none(LoginFailure.key == key)
                failures = 1 if row is None or now - row.last_failure_at > FORGET_AFTER else row.failures + 1
                locked_until = row.locked_until if row is not None else 0.0
                if failures >= self.max_failures:
                    excess = min(failures - self.max_failures, 20)  # 2**20 × lockout is past the cap anyway
                    locked_until = now + min(LONGEST_WAIT, self.lockout * math.pow(2, excess))
                    longest = max(longest, locked_until - now)
                if row is None:
                    LoginFailure.insert(key=key, failures=failures, last_failure_at=now,
                                        locked_until=locked_until).execute()
                else:
                    LoginFailure.update(failures=failures, last_failure_at=now, locked_until=locked_until).where(
                        LoginFailure.key == key).execute()
            # The table holds only recent trouble: rows past every wait and forgotten go.
            LoginFailure.delete().where((LoginFailure.last_failure_at < now - FORGET_AFTER)
                                        & (LoginFailure.locked_until < now)).execute()
        return longest

    def succeeded(self, name_key: str) -> None:
        """Forget a name's failures after it signed in (the address's stay: one good account must not
        clear the count of an address that is guessing other people's passwords)."""
        LoginFailure = self.models.LoginFailure
        with self.database.write():
            LoginFailure.delete().where(LoginFailure.key == name_key).execute()
