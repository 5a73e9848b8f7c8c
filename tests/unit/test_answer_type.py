"""The first evidence prefers a sentence naming what the question asks for (pure)."""

from __future__ import annotations

from appliance.query.answer_type import BONUS, answer_type_bonus, asks_for_a_name


def test_a_question_for_a_parameter_lifts_the_sentence_that_names_one() -> None:
    question = "Which parameter should I raise when the shared lock table runs out of space?"
    restated = "The shared lock table can run out of space when many locks are held."
    answers = "Raise max_locks_per_transaction, which sizes the shared lock table."
    assert answer_type_bonus(question, [restated, answers]) == [0.0, BONUS]


def test_numbers_and_options_count_only_when_the_question_lacks_them() -> None:
    question = "How long does pg_isready wait by default?"
    assert answer_type_bonus(question, ["The default is 3 seconds."]) == [BONUS]
    assert answer_type_bonus(question, ["pg_isready checks a server."]) == [0.0]
    option = "How do I dump only the roles, which option?"
    assert answer_type_bonus(option, ["Use the --globals-only option."]) == [BONUS]


def test_other_questions_get_no_bonus() -> None:
    question = "Why can't I copy one table's files out of the data directory?"
    assert not asks_for_a_name(question)
    assert answer_type_bonus(question, ["Use pg_dump -t 42 instead."]) == [0.0]
