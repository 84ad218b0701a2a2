"""Pig, the dice game, against the computer: first to 50 points wins.

Rented by number of uses: the game does not talk to the license agent itself. The storefront
(or a desktop shortcut) starts it as

    license-agent run PRODUCT_ID -- python3 dicegame.py

so the agent spends one use before the game starts, and refuses to start it when none are left.

Each turn you roll a die as often as you like ("r") and bank the sum ("b"); rolling a 1 loses
the turn's points. `--auto` lets a simple strategy play for you (used by tests and demos).
"""
from __future__ import annotations

import argparse
import random
import sys

GOAL = 50


def computer_turn(rng: random.Random, score: int, out) -> int:
    turn = 0
    while turn < 15 and score + turn < GOAL:
        roll = rng.randint(1, 6)
        if roll == 1:
            print("  computer rolls 1 and loses the turn", file=out)
            return 0
        turn += roll
    print(f"  computer banks {turn}", file=out)
    return turn


def play(rng: random.Random, ask, out) -> str:
    you = cpu = 0
    while True:
        turn = 0
        while True:
            choice = ask(f"you {you} + {turn} this turn, computer {cpu}: [r]oll or [b]ank? ", you, turn)
            if choice is None:
                print("bye", file=out)
                return "quit"
            if choice == "b":
                break
            roll = rng.randint(1, 6)
            print(f"  you roll {roll}", file=out)
            if roll == 1:
                turn = 0
                break
            turn += roll
        you += turn
        if you >= GOAL:
            print(f"you win {you} to {cpu}", file=out)
            return "you"
        cpu += computer_turn(rng, cpu, out)
        if cpu >= GOAL:
            print(f"the computer wins {cpu} to {you}", file=out)
            return "computer"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="dicegame", description="Pig, the dice game")
    ap.add_argument("--seed", type=int, help="repeatable dice")
    ap.add_argument("--auto", action="store_true", help="bank at 12 or more, for demos")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)

    def ask(prompt: str, you: int, turn: int):
        if args.auto:
            return "b" if turn >= 12 or you + turn >= GOAL else "r"
        print(prompt, end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            return None
        return "b" if line.strip().lower().startswith("b") else "r"

    play(rng, ask, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
