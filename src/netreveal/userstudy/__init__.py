"""Human evaluation studies of explanation methods: design, assignment, analysis and report.

A study compares methods on a user's own model: participants rate each method's explanations
(informativeness, understandability; 1-5) and predict the model's output with and without
explanations (forward simulation). Method names stay hidden behind letters; attention checks
catch careless participants.
"""

from netreveal.userstudy.analysis import (
    Analysis,
    BackgroundTest,
    ForwardAccuracy,
    ForwardTest,
    MethodScore,
    PairTest,
    analyse,
)
from netreveal.userstudy.design import assign, exclusions, make_design, participant_view
from netreveal.userstudy.records import (
    Participant,
    Question,
    Response,
    StudyData,
    record_answer,
    record_rating,
    write_responses_csv,
)
from netreveal.userstudy.report import write_analysis_report
from netreveal.userstudy.simulate import simulate_study

__all__ = [
    "Analysis", "BackgroundTest", "ForwardAccuracy", "ForwardTest", "MethodScore", "PairTest", "Participant",
    "Question", "Response", "StudyData", "analyse", "assign", "exclusions", "make_design", "participant_view",
    "record_answer", "record_rating", "simulate_study", "write_analysis_report", "write_responses_csv",
]
