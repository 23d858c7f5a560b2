"""Chat-template feature cases for crates/prompt, rendered by transformers' own renderer.

Each case is a small template (written for this test, exercising one Jinja feature that
published chat templates rely on), a conversation and the special tokens; the expected output
is what `transformers.utils.chat_template_utils.render_jinja_template` (the function behind
`apply_chat_template(tokenize=False)`) returns, or the error message when the template raises.

Run with the parity venv (tools/parity/requirements.txt; jinja2 3.1.6 comes with it):
    python tools/parity/make_template_cases.py crates/prompt/tests/fixtures/template_cases.json
"""

import json
import sys

import jinja2
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}

TEXT_CHAT = [
    {"role": "system", "content": "  Be brief.  "},
    {"role": "user", "content": "Is the heart enlarged?"},
    {"role": "assistant", "content": "No."},
    {"role": "user", "content": "And the lungs?"},
]
PARTS_CHAT = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is shown?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A chest X-ray."}]},
    {"role": "user", "content": [{"type": "text", "text": "Any effusion?"}, {"type": "image"}]},
]

CASES = [
    # Whitespace: trim_blocks + lstrip_blocks with indented block tags and a trailing newline.
    ("whitespace_control", TEXT_CHAT, True,
     "{{ bos_token }}\n{% for message in messages %}\n    {% if message['role'] == 'system' %}\n"
     "<<SYS>>{{ message['content'] | trim }}<</SYS>>\n    {% else %}\n"
     "[{{ message['role'] }}] {{ message['content'] }}\n    {% endif %}\n{% endfor %}\n"
     "{% if add_generation_prompt %}[assistant]{% endif %}\n"),
    # Loop variables, namespace, slicing, string methods (pycompat).
    ("loop_namespace_methods", TEXT_CHAT, True,
     "{% set ns = namespace(n=0, sys='') %}"
     "{% if messages[0].role == 'system' %}{% set ns.sys = messages[0].content.strip() %}{% endif %}"
     "{% for m in messages[1:] %}{% set ns.n = ns.n + 1 %}"
     "{{ loop.index }}/{{ loop.length }}{% if loop.first %}(first){% endif %}{% if loop.last %}(last){% endif %}:"
     "{{ m.role.upper() }}:{{ m.content.lower() }}|{{ m.content.startswith('And') }}|"
     "{{ m.content.replace('?', '!') }}|{{ m.content.split(' ') | length }};"
     "{% endfor %}{{ ns.sys }} n={{ ns.n }} {{ messages | length }}"),
    # Content parts, selectattr, loop controls, `is string` / `is iterable` tests.
    ("content_parts", PARTS_CHAT, True,
     "{% for m in messages %}{{ m['role'] }}:"
     "{% if m['content'] is string %}{{ m['content'] }}{% elif m['content'] is iterable %}"
     "{% for c in m['content'] | selectattr('type', 'equalto', 'image') %}<image>{% endfor %}"
     "{% for c in m['content'] %}{% if c['type'] != 'text' %}{% continue %}{% endif %}{{ c['text'] + ' ' }}{% endfor %}"
     "{% endif %}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}"),
    # tojson as transformers overrides it: json.dumps, no HTML escaping, indent, dict order.
    ("tojson", PARTS_CHAT, False,
     "{{ messages[0] | tojson }}\n{{ messages[1] | tojson(indent=2) }}\n"
     "{{ {'a': 1, 'b': [True, None, 2.5, 'x<y>&\"é'], 'c': {}} | tojson }}\n"
     "{{ messages[0]['content'][1] | tojson(sort_keys=True) }}"),
    # Python spellings of None / booleans, `is defined`, default filter, items(), get().
    ("python_values", TEXT_CHAT, False,
     "{{ tools }} {{ documents }} {{ add_generation_prompt }} {{ foo is defined }} {{ foo | default('d') }} "
     "{% for k, v in messages[1].items() %}{{ k }}={{ v }};{% endfor %} {{ messages[1].get('role') }} "
     "{{ messages[1].get('name', 'anon') }} {{ 'x' * 3 }} {{ ['a', 'b'] | join('-') }} "
     "{{ (messages | last).content }} {{ messages | map(attribute='role') | join(',') }}"),
    # {% generation %} blocks render their body unchanged.
    ("generation_block", TEXT_CHAT, False,
     "{% for m in messages %}{% if m.role == 'assistant' %}{%- generation -%}  {{ m.content }}  {%- endgeneration -%}"
     "{% else %}<{{ m.content }}>{% endif %}{% endfor %}"),
    # Macros.
    ("macro", TEXT_CHAT, True,
     "{% macro turn(role, text) %}<|{{ role }}|>{{ text }}<|end|>{% endmacro %}"
     "{% for m in messages %}{{ turn(m.role, m.content) }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"),
    # raise_exception with a message.
    ("raise", TEXT_CHAT, True,
     "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok"),
]


def main(out_path: str) -> None:
    cases = []
    for name, messages, add_gen, template in CASES:
        case = {"name": name, "template": template, "messages": messages,
                "add_generation_prompt": add_gen, "special_tokens": SPECIAL}
        try:
            rendered, _ = render_jinja_template(
                conversations=[messages], chat_template=template,
                add_generation_prompt=add_gen, **SPECIAL)
            case["text"] = rendered[0]
        except jinja2.exceptions.TemplateError as e:
            case["error"] = str(e)
        cases.append(case)
    doc = {"generator": "tools/parity/make_template_cases.py",
           "versions": {"transformers": transformers.__version__, "jinja2": jinja2.__version__},
           "cases": cases}
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
