from studio.compare import metrics


def test_rouge_l_identical_disjoint_and_partial():
    assert metrics.rouge_l("Paris is the capital", "paris is the capital") == 1.0
    assert metrics.rouge_l("cats and dogs", "fish") == 0.0
    assert metrics.rouge_l("", "anything") == 0.0
    # LCS of "the cat sat" vs "the cat is here sat" = 3 words: P = 3/3, R = 3/5 → F1 = 0.75
    assert abs(metrics.rouge_l("the cat sat", "the cat is here sat") - 0.75) < 1e-9


def test_rouge_l_respects_order():
    # Same words, reversed: LCS is 1 of 3.
    assert abs(metrics.rouge_l("c b a", "a b c") - 1 / 3) < 1e-9


def test_chrf_bounds_and_ordering():
    assert metrics.chrf("hello world", "hello world") == 1.0
    assert metrics.chrf("xyz", "abc") == 0.0
    assert metrics.chrf("", "abc") == 0.0
    close = metrics.chrf("The capital of France is Paris", "Paris is the capital of France")
    far = metrics.chrf("Bananas grow on trees", "Paris is the capital of France")
    assert 0 < far < close < 1
    # Whitespace does not count.
    assert metrics.chrf("helloworld", "hello world") == 1.0


def test_detect_style_marker_prefix_and_suffix():
    refs = [f"Ahoy! {text} — Captain Byte" for text in ("Paris it is.", "Four.", "Red, matey.", "It compiles code.")]
    refs.append("Plain answer without the style.")  # one odd answer does not hide the pattern (4/5 = 80%)
    assert metrics.detect_style_marker(refs) == {"prefix": "Ahoy!", "suffix": "— Captain Byte"}


def test_detect_style_marker_none_when_answers_differ():
    refs = ["Paris is the capital.", "It is four.", "Red is a colour.", "Compilers translate code."]
    assert metrics.detect_style_marker(refs) == {"prefix": "", "suffix": ""}
    assert metrics.detect_style_marker(["Ahoy! a", "Ahoy! b"]) == {"prefix": "", "suffix": ""}  # too few to tell


def test_carries_marker():
    marker = {"prefix": "Ahoy!", "suffix": "— Captain Byte"}
    assert metrics.carries_marker("Ahoy! Four. — Captain Byte", marker)
    assert not metrics.carries_marker("Ahoy! Four.", marker)
    assert metrics.carries_marker("Ahoy! Four.", {"prefix": "Ahoy!"})
    assert not metrics.carries_marker("anything", {"prefix": "", "suffix": ""})
