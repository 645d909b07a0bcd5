"""The seed notebook's class, in Python, as the problem was first solved.

`GPUCredit` keeps every call and answers `getBalance(creditId, timestamp)` from history
by replaying that account's calls up to the timestamp: adds make credits, uses draw
from the active ones soonest-expiring first, and a balance of 0 is None. It is the
baseline that gpucredit is compared with in bench/fleet_compare.py.
"""
from collections import defaultdict


class GPUCredit:
    def __init__(self):
        self.calls = defaultdict(list)  # account -> [(timestamp, arrival, kind, amount, end)]
        self.arrival = 0

    def addCredit(self, creditId, amount, timestamp, expiration):
        self.calls[creditId].append((timestamp, self.arrival, "add", amount, timestamp + expiration))
        self.arrival += 1

    def useCredit(self, creditId, timestamp, amount):
        self.calls[creditId].append((timestamp, self.arrival, "use", amount, None))
        self.arrival += 1

    def getBalance(self, creditId, timestamp):
        credits = []  # [end, start, arrival, remaining]
        for t, arrival, kind, amount, end in sorted(self.calls.get(creditId, ())):
            if t > timestamp:
                break
            if kind == "add":
                credits.append([end, t, arrival, amount])
                continue
            need = amount
            for credit in sorted(c for c in credits if c[1] <= t <= c[0] and c[3] > 0):
                take = min(credit[3], need)
                credit[3] -= take
                need -= take
                if need == 0:
                    break
        balance = sum(c[3] for c in credits if c[1] <= timestamp <= c[0])
        return balance or None
