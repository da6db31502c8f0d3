"""The small runner the gitops tests share (policy_test.py, sales_test.py): tests register with
`@suite.test`, report problems with `expect`, and `suite.main` runs them, printing one line per
failed test (and its problems) and `N passed, M failed`; exit status 1 on any failure."""
import argparse


class Failures(Exception):
    def __init__(self, problems):
        super().__init__("\n".join(problems))
        self.problems = problems


def expect(problems):
    if problems:
        raise Failures(problems)


class Suite:
    def __init__(self, description, explained=None):
        """`explained`: exception types whose `problems` are listed under a sentence saying
        what they mean (e.g. {CalendarError: "the calendar cannot be rendered"})."""
        self.description = description
        self.explained = explained or {}
        self.tests = []

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def main(self, argv):
        ap = argparse.ArgumentParser(description=self.description)
        ap.add_argument("-v", "--verbose", action="store_true", help="print passing tests too")
        ap.add_argument("-k", dest="pattern", help="run only tests whose name contains this")
        a = ap.parse_args(argv)
        passed = failed = 0
        for fn in self.tests:
            if a.pattern and a.pattern not in fn.__name__:
                continue
            try:
                fn()
            except Failures as e:
                failed += 1
                print("FAIL %s: %s" % (fn.__name__, (fn.__doc__ or "").strip().splitlines()[0]))
                for p in e.problems:
                    print("  - " + p)
            except tuple(self.explained) as e:
                failed += 1
                print("FAIL %s: %s:" % (fn.__name__, self.explained[type(e)]))
                for p in e.problems:
                    print("  - " + p)
            except AssertionError as e:
                failed += 1
                print("FAIL %s: %s" % (fn.__name__, e))
            except Exception as e:  # a broken manifest must fail the test, not the runner
                failed += 1
                print("FAIL %s: %s: %s" % (fn.__name__, type(e).__name__, e))
            else:
                passed += 1
                if a.verbose:
                    print("ok   %s" % fn.__name__)
        print("%d passed, %d failed" % (passed, failed))
        return 1 if failed or not passed else 0
