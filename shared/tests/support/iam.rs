// The IAM check: moto does not enforce IAM, so a store call that a Lambda's policy in
// template.yaml does not allow would pass every test here and fail only on AWS. This SDK
// interceptor sees every DynamoDB request made while the server handles an endpoint
// (`stark::http::SERVING`) and checks it, item by item, against the policy of the Lambda
// that serves that endpoint: the action and the `dynamodb:LeadingKeys` prefixes.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeSerializationInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_yaml::Value;

use stark::http::router::lambdas;
use stark::http::Endpoint;

tokio::task_local! {
    /// The function a test's direct calls act as (a worker's use case run outside any
    /// endpoint): its requests are checked against that function's policy.
    pub static AS_FUNCTION: &'static str;
}

/// One policy statement: actions, and the allowed partition-key patterns (None: any).
#[derive(Debug, Clone)]
struct Statement {
    actions: Vec<String>,
    leading_keys: Option<Vec<String>>,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(seq) => seq.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

/// The DynamoDB statements of each function in template.yaml, by binary name.
fn policies() -> HashMap<String, Vec<Statement>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut out = HashMap::new();
    for (_, res) in doc["Resources"].as_mapping().unwrap() {
        let Some(binary) = res["Metadata"]["BuildProperties"]["Binary"].as_str() else { continue };
        let mut statements = Vec::new();
        for policy in res["Properties"]["Policies"].as_sequence().into_iter().flatten() {
            for st in policy["Statement"].as_sequence().into_iter().flatten() {
                if st["Effect"].as_str() != Some("Allow") {
                    continue;
                }
                let actions: Vec<String> =
                    strings(&st["Action"]).into_iter().filter(|a| a.starts_with("dynamodb:")).collect();
                if actions.is_empty() {
                    continue;
                }
                let keys = &st["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
                let leading_keys = if keys.is_null() { None } else { Some(strings(keys)) };
                statements.push(Statement { actions, leading_keys });
            }
        }
        out.insert(binary.to_string(), statements);
    }
    out
}

fn like(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

fn pk(key: Option<&HashMap<String, AttributeValue>>) -> Option<String> {
    key.and_then(|k| k.get("PK")).and_then(|v| v.as_s().ok()).cloned()
}

/// (action, partition key) for each item a request touches.
fn touches(ctx: &BeforeSerializationInterceptorContextRef<'_>) -> Result<Vec<(&'static str, Option<String>)>, String> {
    use aws_sdk_dynamodb::operation::*;
    let input = ctx.input();
    if let Some(i) = input.downcast_ref::<get_item::GetItemInput>() {
        return Ok(vec![("dynamodb:GetItem", pk(i.key.as_ref()))]);
    }
    if let Some(i) = input.downcast_ref::<put_item::PutItemInput>() {
        return Ok(vec![("dynamodb:PutItem", pk(i.item.as_ref()))]);
    }
    if let Some(i) = input.downcast_ref::<update_item::UpdateItemInput>() {
        return Ok(vec![("dynamodb:UpdateItem", pk(i.key.as_ref()))]);
    }
    if let Some(i) = input.downcast_ref::<delete_item::DeleteItemInput>() {
        return Ok(vec![("dynamodb:DeleteItem", pk(i.key.as_ref()))]);
    }
    if let Some(i) = input.downcast_ref::<query::QueryInput>() {
        // The adapter always binds the partition key (of the table or the index) to `:pk`.
        let key = i.expression_attribute_values.as_ref().and_then(|v| v.get(":pk")).and_then(|v| v.as_s().ok());
        return Ok(vec![("dynamodb:Query", key.cloned())]);
    }
    if let Some(i) = input.downcast_ref::<batch_get_item::BatchGetItemInput>() {
        return Ok(i
            .request_items
            .iter()
            .flat_map(|m| m.values())
            .flat_map(|k| k.keys().iter())
            .map(|k| ("dynamodb:BatchGetItem", pk(Some(k))))
            .collect());
    }
    if input.downcast_ref::<describe_table::DescribeTableInput>().is_some() {
        return Ok(vec![("dynamodb:DescribeTable", None)]);
    }
    if let Some(i) = input.downcast_ref::<transact_write_items::TransactWriteItemsInput>() {
        // Authorised item by item, by the action of each part.
        return Ok(i
            .transact_items()
            .iter()
            .map(|t| {
                if let Some(p) = &t.put {
                    ("dynamodb:PutItem", pk(Some(&p.item)))
                } else if let Some(u) = &t.update {
                    ("dynamodb:UpdateItem", pk(Some(&u.key)))
                } else if let Some(d) = &t.delete {
                    ("dynamodb:DeleteItem", pk(Some(&d.key)))
                } else if let Some(c) = &t.condition_check {
                    ("dynamodb:ConditionCheckItem", pk(Some(&c.key)))
                } else {
                    ("dynamodb:TransactWriteItems", None)
                }
            })
            .collect());
    }
    Err("an operation the IAM check does not know yet: teach tests/support/iam.rs".into())
}

#[derive(Debug, Clone)]
pub struct IamCheck {
    policies: Arc<HashMap<String, Vec<Statement>>>,
    pub violations: Arc<Mutex<Vec<String>>>,
    /// Every DynamoDB request made while serving an endpoint: (endpoint, action of each item).
    pub calls: Arc<Mutex<Vec<(Endpoint, &'static str)>>>,
}

impl IamCheck {
    pub fn new() -> Self {
        IamCheck {
            policies: Arc::new(policies()),
            violations: Arc::new(Mutex::new(Vec::new())),
            calls: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn lambda_of(endpoint: Endpoint) -> &'static str {
        lambdas::ALL
            .iter()
            .find(|(_, eps)| eps.contains(&endpoint))
            .map(|(n, _)| *n)
            .expect("every endpoint has a Lambda")
    }

    fn allowed(&self, lambda: &str, action: &str, key: Option<&str>) -> bool {
        self.policies.get(lambda).into_iter().flatten().any(|st| {
            st.actions.iter().any(|a| a == action)
                && match (&st.leading_keys, key) {
                    (None, _) => true,
                    (Some(patterns), Some(k)) => patterns.iter().any(|p| like(p, k)),
                    (Some(_), None) => false,
                }
        })
    }
}

impl Intercept for IamCheck {
    fn name(&self) -> &'static str {
        "IamCheck"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // Calls the tests make directly, outside any endpoint and not acting as a worker,
        // run with no Lambda's policy.
        let (lambda, what) = match (stark::http::SERVING.try_with(|e| *e), AS_FUNCTION.try_with(|f| *f)) {
            (Ok(endpoint), _) => (Self::lambda_of(endpoint), format!("{endpoint:?}")),
            (Err(_), Ok(function)) => (function, "worker".to_string()),
            (Err(_), Err(_)) => return Ok(()),
        };
        let mut refused = Vec::new();
        match touches(context) {
            Ok(items) => {
                // Counted per endpoint; a worker's calls have none.
                if let Ok(endpoint) = stark::http::SERVING.try_with(|e| *e) {
                    self.calls.lock().unwrap().extend(items.iter().map(|(action, _)| (endpoint, *action)));
                }
                for (action, key) in items {
                    if !self.allowed(lambda, action, key.as_deref()) {
                        refused.push(format!("{lambda} ({what}) may not {action} on PK {key:?} per template.yaml"));
                    }
                }
            }
            Err(e) => refused.push(format!("{lambda} ({what}): {e}")),
        }
        if refused.is_empty() {
            return Ok(());
        }
        self.violations.lock().unwrap().extend(refused.iter().cloned());
        Err(refused.join("; ").into())
    }
}

#[test]
fn the_template_policies_are_read() {
    let p = policies();
    for (name, _) in lambdas::ALL {
        assert!(p.contains_key(*name), "{name} missing from template.yaml");
    }
    let check = IamCheck::new();
    assert!(check.allowed("me", "dynamodb:GetItem", Some("USER#1")));
    assert!(!check.allowed("me", "dynamodb:GetItem", Some("REFRESH#x")));
    assert!(!check.allowed("me", "dynamodb:PutItem", Some("USER#1")));
    assert!(check.allowed("health", "dynamodb:DescribeTable", None));
    assert!(check.allowed("products", "dynamodb:Query", Some("CATALOG")));
    assert!(!check.allowed("products", "dynamodb:Query", Some("USER#1")));
    assert!(check.allowed("purchase", "dynamodb:UpdateItem", Some("IDEM#u#k")));
    assert!(!check.allowed("start-trial", "dynamodb:UpdateItem", Some("IDEM#u#k")));
}
