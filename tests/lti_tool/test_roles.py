import pytest

from lti_tool.constants import Audience
from lti_tool.roles import audience_for

M = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
I = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"  # noqa: E741
S = "http://purl.imsglobal.org/vocab/lis/v2/system/person#"


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ([M + "Learner"], Audience.LEARNER),
        ([M + "Instructor"], Audience.INSTRUCTOR),
        ([M + "Instructor#TeachingAssistant"], Audience.INSTRUCTOR),
        (["Instructor"], Audience.INSTRUCTOR),  # short context role form
        ([M + "Learner", I + "Student"], Audience.LEARNER),
        ([M + "Instructor", I + "Administrator"], Audience.ADMIN),
        ([S + "SysAdmin"], Audience.ADMIN),
        ([S + "Administrator"], Audience.ADMIN),
        ([], Audience.LEARNER),  # no roles: the least privileged view
        (["http://example.com/role#Wizard"], Audience.LEARNER),  # unknown role
        ([M + "Mentor"], Audience.INSTRUCTOR),
        ([I + "Instructor"], Audience.INSTRUCTOR),
    ],
)
def test_audience(roles, expected):
    assert audience_for(roles) is expected


def test_learner_is_not_promoted_by_a_lookalike_role():
    assert audience_for([M + "Learner", "http://evil.example/membership#Administrator"]) is (
        Audience.LEARNER
    )
