//! Chat templates. ChatML (`<|im_start|>role\ncontent<|im_end|>\n`, then
//! `<|im_start|>assistant\n` to prompt a reply) is recognised in the file's
//! `tokenizer.chat_template`; a default system prompt written literally in the template (used
//! when the conversation does not start with a system message, as SmolLM2's does) is taken
//! from the template text, not from this code.

/// One message of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage { role: role.into(), content: content.into() }
    }
}

/// A ChatML template, possibly with a default system prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatTemplate {
    default_system: Option<String>,
}

const START: &str = "<|im_start|>";
const END: &str = "<|im_end|>";

impl ChatTemplate {
    /// ChatML with an optional default system prompt.
    pub fn chatml(default_system: Option<String>) -> Self {
        ChatTemplate { default_system }
    }

    /// Recognise a Jinja chat template. Only ChatML templates are supported; the error says
    /// what was found otherwise.
    pub fn from_jinja(source: &str) -> Result<Self, String> {
        if !source.contains(START) || !source.contains(END) {
            let head: String = source.chars().take(80).collect();
            return Err(format!(
                "not a ChatML template (no {START}/{END}); only ChatML is supported: {head:?}"
            ));
        }
        // A literal default system block: `<|im_start|>system\n` TEXT `<|im_end|>` where TEXT
        // holds no template syntax or string concatenation.
        let marker = format!("{START}system\n");
        let default_system = source.match_indices(&marker).find_map(|(at, _)| {
            let rest = &source[at + marker.len()..];
            let text = &rest[..rest.find(END)?];
            let literal =
                !text.is_empty() && !["{{", "{%", "'", "\"", "+"].iter().any(|s| text.contains(s));
            literal.then(|| text.to_string())
        });
        Ok(ChatTemplate { default_system })
    }

    pub fn default_system_prompt(&self) -> Option<&str> {
        self.default_system.as_deref()
    }

    /// The prompt text for `messages` (special tokens written out; tokenize it with special
    /// tokens parsed). With `add_generation_prompt`, ends with the assistant's header.
    pub fn apply(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> String {
        let mut out = String::new();
        let starts_with_system = messages.first().is_some_and(|m| m.role == "system");
        if let (false, Some(system)) = (starts_with_system, &self.default_system) {
            out.push_str(&format!("{START}system\n{system}{END}\n"));
        }
        for m in messages {
            out.push_str(&format!("{START}{}\n{}{END}\n", m.role, m.content));
        }
        if add_generation_prompt {
            out.push_str(&format!("{START}assistant\n"));
        }
        out
    }

    /// A single user turn with the generation prompt: what `--chat TEXT` means.
    pub fn user_prompt(&self, text: &str) -> String {
        self.apply(&[ChatMessage::new("user", text)], true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_template_and_its_default_system_prompt() {
        let t = ChatTemplate::from_jinja(SMOLLM2).unwrap();
        assert_eq!(
            t.default_system_prompt(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        assert_eq!(
            t.user_prompt("hi"),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        let own = t.apply(
            &[ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "x")],
            false,
        );
        assert_eq!(own, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nx<|im_end|>\n");
    }

    #[test]
    fn plain_chatml_has_no_default_system_and_others_are_refused() {
        let t = ChatTemplate::from_jinja(
            "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'}}",
        )
        .unwrap();
        assert_eq!(t.default_system_prompt(), None);
        assert_eq!(t.user_prompt("a"), "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n");
        assert!(ChatTemplate::from_jinja("{{ bos_token }}[INST] {{ m }} [/INST]").is_err());
    }
}
