//! Runbooks (`docs/runbooks/*.md`, one per SLO): title, text, and the verification commands of
//! their "Verify the fix" section, for `ops://runbooks`.

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Runbook {
    /// The file stem, which is the SLO's name.
    pub name: String,
    pub title: String,
    /// Inline code spans and fenced blocks of the "Verify" section.
    pub verification: Vec<String>,
    #[serde(skip)]
    pub markdown: String,
}

impl Runbook {
    pub fn parse(name: &str, markdown: &str) -> Self {
        let title = markdown
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .unwrap_or(name)
            .trim()
            .to_owned();
        let mut verification = Vec::new();
        let mut in_verify = false;
        let mut fence: Option<String> = None;
        for line in markdown.lines() {
            if let Some(block) = &mut fence {
                if line.trim_start().starts_with("```") {
                    verification.push(block.trim_end().to_owned());
                    fence = None;
                } else {
                    block.push_str(line);
                    block.push('\n');
                }
                continue;
            }
            if let Some(heading) = line.strip_prefix("## ") {
                in_verify = heading.to_ascii_lowercase().contains("verif");
                continue;
            }
            if !in_verify {
                continue;
            }
            if line.trim_start().starts_with("```") {
                fence = Some(String::new());
                continue;
            }
            // Inline code spans: `...`
            let mut rest = line;
            while let Some(start) = rest.find('`') {
                let after = &rest[start + 1..];
                let Some(end) = after.find('`') else { break };
                let code = after[..end].trim();
                if code.len() > 8 {
                    verification.push(code.to_owned());
                }
                rest = &after[end + 1..];
            }
        }
        Runbook {
            name: name.to_owned(),
            title,
            verification,
            markdown: markdown.to_owned(),
        }
    }

    pub fn uri(&self) -> String {
        format!("ops://runbooks/{}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_commands_come_from_the_verify_section() {
        let md = "# slo_x\n\n## First\n`curl nope-first-section`\n\n## Verify the fix\n- watch: `curl -s localhost:7070/v1/slo/x`\n- MCP: `query_flow_health(flow=x, window=5m)` and `ok`\n```sh\nslowburn sql \"SELECT 1\"\n```\n## After\n`curl after-section-x`\n";
        let r = Runbook::parse("slo_x", md);
        assert_eq!(r.title, "slo_x");
        assert_eq!(
            r.verification,
            [
                "curl -s localhost:7070/v1/slo/x",
                "query_flow_health(flow=x, window=5m)",
                "slowburn sql \"SELECT 1\""
            ]
        );
    }
}
