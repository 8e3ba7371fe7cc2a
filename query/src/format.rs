//! Query results as JSON (`{"columns","rows","truncated","elapsed_ms"}`), CSV, or an Arrow IPC
//! stream.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::error::ArrowError;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub rows: usize,
    pub truncated: bool,
    pub elapsed_ms: f64,
}

fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// One cell as JSON: numbers and booleans as such, timestamps as RFC 3339 text, anything else as
/// Arrow's display text; null as null.
pub fn cell_json(array: &ArrayRef, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Boolean => Value::Bool(array.as_boolean().value(row)),
        DataType::Int8 => json!(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => json!(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => json!(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => json!(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => json!(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => json!(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => json!(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float32 => number(f64::from(array.as_primitive::<Float32Type>().value(row))),
        DataType::Float64 => number(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(row).to_owned()),
        DataType::Utf8View => Value::String(array.as_string_view().value(row).to_owned()),
        // Lists (e.g. `array_agg`) become JSON arrays.
        DataType::List(_) => list_json(&array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => list_json(&array.as_list::<i64>().value(row)),
        DataType::FixedSizeList(_, _) => list_json(&array.as_fixed_size_list().value(row)),
        DataType::Timestamp(_, Some(_)) => {
            match ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()) {
                // RFC 3339 in UTC with a `Z`, as JSON consumers expect.
                Ok(f) => Value::String(f.value(row).to_string().replace("+00:00", "Z")),
                Err(e) => Value::String(format!("<unprintable: {e}>")),
            }
        }
        _ => match ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()) {
            Ok(f) => Value::String(f.value(row).to_string()),
            Err(e) => Value::String(format!("<unprintable: {e}>")),
        },
    }
}

fn list_json(values: &ArrayRef) -> Value {
    Value::Array((0..values.len()).map(|i| cell_json(values, i)).collect())
}

impl QueryOutput {
    pub fn columns(&self) -> Vec<String> {
        self.schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }

    /// Rows as arrays of JSON values, in column order.
    pub fn json_rows(&self) -> Vec<Vec<Value>> {
        let mut out = Vec::with_capacity(self.rows);
        for b in &self.batches {
            for r in 0..b.num_rows() {
                out.push(b.columns().iter().map(|c| cell_json(c, r)).collect());
            }
        }
        out
    }

    pub fn to_json(&self) -> Value {
        json!({
            "columns": self.columns(),
            "rows": self.json_rows(),
            "truncated": self.truncated,
            "elapsed_ms": (self.elapsed_ms * 1000.0).round() / 1000.0,
        })
    }

    pub fn to_csv(&self) -> Result<Vec<u8>, ArrowError> {
        let mut w = arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(Vec::new());
        if self.batches.is_empty() {
            w.write(&RecordBatch::new_empty(self.schema.clone()))?;
        }
        for b in &self.batches {
            w.write(b)?;
        }
        Ok(w.into_inner())
    }

    pub fn to_arrow_ipc(&self) -> Result<Vec<u8>, ArrowError> {
        let mut w = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &self.schema)?;
        for b in &self.batches {
            w.write(b)?;
        }
        w.finish()?;
        w.into_inner()
    }

    /// A plain-text table (for the CLI).
    pub fn to_table(&self) -> Result<String, ArrowError> {
        let t = arrow::util::pretty::pretty_format_batches(&self.batches)?;
        Ok(t.to_string())
    }
}
