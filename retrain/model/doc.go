// Package model holds driftwatch's built-in trainers and the evaluation
// metrics that compare a champion with a challenger. It is pure Go on Arrow
// record batches and imports no Kafka, ClickHouse or Prometheus client.
//
// # Data
//
// Training and prediction read Arrow records with the columns of the
// dataset builder: features_numeric map<utf8, float64>, features_categorical
// map<utf8, utf8> and the label, actual_label (utf8, binary classification
// against a configured positive class) or actual_value (float64,
// regression). A missing feature is an absent key (a null map, a null item
// or a NaN count as absent too). Rows whose label is null (or NaN) are
// skipped by training and counted in the [Report].
//
// Trainers take a [Batches], a function that streams the records; it is
// called once per pass over the data. Each pass encodes one record batch at
// a time into a dense block (batch rows × columns) and accumulates sums
// from it, so memory is bounded by the batch size and the number of
// columns, never by the number of rows. Batches are spread round-robin over
// [Config.Workers] goroutines, each with its own accumulator; partial sums
// are added in worker order, so a result is bit-for-bit reproducible for a
// given number of workers.
//
// # Preprocessing
//
// A [Preprocessor] is fitted on the training rows only (first pass) and
// stored in the model artifact. Its output columns, in this order:
//
//   - every numeric feature seen in training, by name: (x − mean) / std with
//     the mean and population standard deviation (ddof 0, like
//     scikit-learn's StandardScaler) of the present values; a std of 0 is
//     replaced by 1; a missing value becomes 0 (the mean);
//   - with [PreprocessOptions.MissingIndicators], one column
//     "<feature>:missing" (1 when absent) for each numeric feature that was
//     missing at least once in training (scikit-learn's "missing-only");
//   - every categorical feature seen in training, by name: one 0/1 column
//     "<feature>=<category>" for each of its TopK (default 20) most frequent
//     training categories (count descending, then category ascending), then
//     "<feature>:other" for any other or unseen category. A missing
//     categorical feature sets none of its columns.
//
// One-hot columns are not standardised. Features that appear only at
// prediction time are ignored.
//
// The columns are at most [PreprocessOptions.MaxFeatures] (default 1024),
// chosen before any matrix is allocated, most frequent first: numeric
// features by the training rows they are present in (a feature and its
// missing indicator are kept together), categorical features by the rows
// they are present in (their "other" column), and each of a categorical
// feature's TopK categories by its count, after its feature; ties go by
// name. What is left out is ignored like a feature unseen in training. So
// five events with 2,000 distinct feature names each give 1024 columns, not
// 10,000 (an 800 MB Hessian per worker). Below the limit every feature is
// kept and the columns are the ones listed above.
//
// # Objectives and solvers
//
// Logistic regression (binary classification) minimises
//
//	Σᵢ [log(1 + exp(zᵢ)) − yᵢ zᵢ] + ‖w‖² / (2C),  zᵢ = xᵢ·w + b,
//
// the objective of scikit-learn's LogisticRegression(penalty="l2", C=C,
// fit_intercept=True); the intercept b is not penalised. The solver is
// Newton's method (IRLS): each pass accumulates the objective, the gradient
// and the dense Hessian Σ pᵢ(1−pᵢ) xᵢxᵢᵀ + I/C, and the Newton step is solved
// by Cholesky. Far from the optimum a step that does not decrease the
// objective enough (Armijo) is halved; once the predicted decrease is down
// to the rounding noise of the objective the full step is taken. It stops
// when the largest step component is below [Config.Tol] (default 1e-10)
// relative to the coefficients, or when steps below 1e-6 stop shrinking
// (the rounding floor of the sums), usually after 6–8 passes. The result
// is the optimum to about the precision of the sums, not to a loose
// gradient tolerance: on the reference data it matches scikit-learn's
// newton-cholesky solver to 6.4e-15 (asserted: 1e-13), and its lbfgs
// solver, which stops 3.2e-6 short of the optimum, to that gap.
//
// Ridge regression minimises Σᵢ (yᵢ − xᵢ·w − b)² + α‖w‖², scikit-learn's
// Ridge(alpha=α) with an unpenalised intercept, in closed form: one pass
// accumulates XᵀX and Xᵀy (with the intercept column), and the penalised
// normal equations are solved by Cholesky.
//
// # Metrics
//
// [Metric] names the evaluation metrics (ROC AUC with ties handled as
// scikit-learn's roc_auc_score, log loss, Brier score, accuracy, precision,
// recall and F1 at a 0.5 threshold, RMSE, MAE, R²), each defined as the
// scikit-learn function of the same name. [BootstrapDiff] gives a seeded,
// paired percentile bootstrap interval of challenger − champion on the same
// rows.
//
// The numbers are checked against scikit-learn by testdata/reference.py,
// which writes testdata/reference.json (see reference_test.go).
package model
