//! Metric math: GetMetricData's `Expression`, with `+ - * /` between query ids and constants, unary
//! minus, parentheses and `FILL(series, value)`. Two series combine element-wise on the timestamps
//! present in both, as CloudWatch computes a ratio like `100 * errors / requests`; a series and a
//! constant combine at every timestamp of the series.
//!
//! `FILL` gives the series `value` at every timestamp where it has none, as an ALB count that is
//! published only when nonzero needs before it is divided: `FILL(errors, 0) / requests`. CloudWatch
//! fills every period of the query's range; here the periods are those where any series of the
//! request has a datapoint, which is the same wherever the filled series is combined with another.

use std::collections::BTreeMap;

/// A series: value by timestamp (epoch milliseconds).
pub type Series = BTreeMap<i64, f64>;

/// Why an expression cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    /// Not in the grammar.
    #[error("expression {expression:?}: {why}")]
    Syntax {
        /// The expression.
        expression: String,
        /// What is wrong.
        why: String,
    },
    /// It names an id no query has (or one defined after it).
    #[error("expression {expression:?} names {id:?}, which is not the id of another query")]
    UnknownId {
        /// The expression.
        expression: String,
        /// The id.
        id: String,
    },
}

/// A value while evaluating: a constant or a series.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A number.
    Constant(f64),
    /// A series.
    Series(Series),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Number(f64),
    Id(String),
    Op(char),
    Open,
    Close,
    Comma,
}

fn tokens(expression: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let chars: Vec<char> = expression.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            out.push(Token::Number(text.parse().map_err(|_| format!("{text:?} is not a number"))?));
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Id(chars[start..i].iter().collect()));
        } else if "+-*/".contains(c) {
            out.push(Token::Op(c));
            i += 1;
        } else if c == '(' {
            out.push(Token::Open);
            i += 1;
        } else if c == ')' {
            out.push(Token::Close);
            i += 1;
        } else if c == ',' {
            out.push(Token::Comma);
            i += 1;
        } else {
            return Err(format!("unexpected {c:?}"));
        }
    }
    Ok(out)
}

/// Evaluates `expression`, looking ids up in `series`.
pub fn evaluate(expression: &str, series: &BTreeMap<String, Series>) -> Result<Operand, ExpressionError> {
    let syntax = |why: String| ExpressionError::Syntax { expression: expression.to_owned(), why };
    let tokens = tokens(expression).map_err(syntax)?;
    let mut parser = Parser { tokens: &tokens, at: 0, series, expression };
    let value = parser.sum()?;
    if parser.at != tokens.len() {
        return Err(syntax(format!("unexpected {:?}", tokens[parser.at])));
    }
    Ok(value)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    series: &'a BTreeMap<String, Series>,
    expression: &'a str,
}

impl Parser<'_> {
    fn syntax(&self, why: &str) -> ExpressionError {
        ExpressionError::Syntax { expression: self.expression.to_owned(), why: why.to_owned() }
    }

    fn sum(&mut self) -> Result<Operand, ExpressionError> {
        let mut left = self.product()?;
        while let Some(Token::Op(op @ ('+' | '-'))) = self.tokens.get(self.at) {
            self.at += 1;
            let right = self.product()?;
            left = combine(*op, left, right);
        }
        Ok(left)
    }

    fn product(&mut self) -> Result<Operand, ExpressionError> {
        let mut left = self.unary()?;
        while let Some(Token::Op(op @ ('*' | '/'))) = self.tokens.get(self.at) {
            self.at += 1;
            let right = self.unary()?;
            left = combine(*op, left, right);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Operand, ExpressionError> {
        if let Some(Token::Op('-')) = self.tokens.get(self.at) {
            self.at += 1;
            let value = self.unary()?;
            return Ok(combine('*', Operand::Constant(-1.0), value));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Operand, ExpressionError> {
        let token = self.tokens.get(self.at).ok_or_else(|| self.syntax("ends too early"))?;
        self.at += 1;
        match token {
            Token::Number(n) => Ok(Operand::Constant(*n)),
            Token::Id(function) if self.tokens.get(self.at) == Some(&Token::Open) => {
                self.at += 1;
                let mut arguments = vec![self.sum()?];
                while self.tokens.get(self.at) == Some(&Token::Comma) {
                    self.at += 1;
                    arguments.push(self.sum()?);
                }
                if self.tokens.get(self.at) != Some(&Token::Close) {
                    return Err(self.syntax("a parenthesis is not closed"));
                }
                self.at += 1;
                self.call(function, arguments)
            }
            Token::Id(id) => {
                self.series.get(id).cloned().map(Operand::Series).ok_or_else(|| ExpressionError::UnknownId {
                    expression: self.expression.to_owned(),
                    id: id.clone(),
                })
            }
            Token::Open => {
                let value = self.sum()?;
                match self.tokens.get(self.at) {
                    Some(Token::Close) => {
                        self.at += 1;
                        Ok(value)
                    }
                    _ => Err(self.syntax("a parenthesis is not closed")),
                }
            }
            Token::Op(op) => Err(self.syntax(&format!("{op} has nothing on its left"))),
            Token::Close => Err(self.syntax("unexpected )")),
            Token::Comma => Err(self.syntax("unexpected ,")),
        }
    }

    /// A function of metric math; only `FILL(series, value)` is served.
    fn call(&self, function: &str, arguments: Vec<Operand>) -> Result<Operand, ExpressionError> {
        if !function.eq_ignore_ascii_case("FILL") {
            return Err(self.syntax(&format!("the function {function} is not served here; FILL is")));
        }
        let [Operand::Series(mut series), Operand::Constant(value)] =
            <[Operand; 2]>::try_from(arguments).map_err(|_| self.syntax("FILL takes two arguments"))?
        else {
            return Err(self.syntax("FILL takes a series and a number"));
        };
        for at in self.series.values().flat_map(|other| other.keys()) {
            series.entry(*at).or_insert(value);
        }
        Ok(Operand::Series(series))
    }
}

fn apply(op: char, a: f64, b: f64) -> f64 {
    match op {
        '+' => a + b,
        '-' => a - b,
        '*' => a * b,
        _ => a / b,
    }
}

/// `a op b`; division by zero leaves the datapoint out, as CloudWatch does.
fn combine(op: char, a: Operand, b: Operand) -> Operand {
    let keep = |v: f64| v.is_finite().then_some(v);
    match (a, b) {
        (Operand::Constant(a), Operand::Constant(b)) => Operand::Constant(apply(op, a, b)),
        (Operand::Series(s), Operand::Constant(c)) => {
            Operand::Series(s.into_iter().filter_map(|(t, v)| keep(apply(op, v, c)).map(|v| (t, v))).collect())
        }
        (Operand::Constant(c), Operand::Series(s)) => {
            Operand::Series(s.into_iter().filter_map(|(t, v)| keep(apply(op, c, v)).map(|v| (t, v))).collect())
        }
        (Operand::Series(a), Operand::Series(b)) => Operand::Series(
            a.into_iter().filter_map(|(t, x)| b.get(&t).and_then(|y| keep(apply(op, x, *y))).map(|v| (t, v))).collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(points: &[(i64, f64)]) -> Series {
        points.iter().copied().collect()
    }

    #[test]
    fn a_ratio_is_element_wise_on_shared_timestamps() {
        let named = BTreeMap::from([
            ("errors".to_owned(), series(&[(0, 1.0), (60, 0.0), (120, 5.0)])),
            ("requests".to_owned(), series(&[(0, 10.0), (60, 20.0), (180, 5.0)])),
        ]);
        let ratio = evaluate("100 * errors / requests", &named).unwrap();
        assert_eq!(ratio, Operand::Series(series(&[(0, 10.0), (60, 0.0)])));
        let grouped = evaluate("(errors + requests) * -2", &named).unwrap();
        assert_eq!(grouped, Operand::Series(series(&[(0, -22.0), (60, -40.0)])));
        assert_eq!(evaluate("1 + 2 * 3 - 4 / 2", &named).unwrap(), Operand::Constant(5.0));
    }

    #[test]
    fn fill_gives_a_missing_period_its_value_before_a_ratio() {
        // An ALB error count is published only for periods that had errors.
        let named = BTreeMap::from([
            ("errors".to_owned(), series(&[(60, 2.0)])),
            ("requests".to_owned(), series(&[(0, 10.0), (60, 20.0), (120, 5.0)])),
        ]);
        let share = evaluate("FILL(errors, 0) / requests", &named).unwrap();
        assert_eq!(share, Operand::Series(series(&[(0, 0.0), (60, 0.1), (120, 0.0)])));
        assert_eq!(evaluate("errors / requests", &named).unwrap(), Operand::Series(series(&[(60, 0.1)])));
        for bad in ["FILL(errors)", "FILL(errors, requests)", "FILL(1, 0)", "RATE(errors)", "FILL(errors, 0"] {
            assert!(matches!(evaluate(bad, &named), Err(ExpressionError::Syntax { .. })), "{bad}");
        }
    }

    #[test]
    fn bad_expressions_say_why() {
        let named = BTreeMap::from([("a".to_owned(), series(&[(0, 0.0)]))]);
        assert_eq!(evaluate("a / a", &named).unwrap(), Operand::Series(Series::new()), "0/0 is no datapoint");
        assert!(matches!(evaluate("b + 1", &named), Err(ExpressionError::UnknownId { .. })));
        for bad in ["(a + 1", "a +", "* a", "a $ 1", "a a", ")"] {
            assert!(matches!(evaluate(bad, &named), Err(ExpressionError::Syntax { .. })), "{bad}");
        }
    }
}
