package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Formats the writers support.
var Formats = []string{"csv", "md", "json"}

// Write writes r in format ("csv", "md" or "json").
func Write(w io.Writer, r Report, format string) error {
	switch format {
	case "csv":
		return WriteCSV(w, r)
	case "md", "markdown":
		return WriteMarkdown(w, r)
	case "json":
		return WriteJSON(w, r)
	}
	return fmt.Errorf("unknown report format %q (want csv, md or json)", format)
}

var csvHeader = []string{"group", "currency", "gpu_hours_leased", "gpu_hours_used", "gpu_hours_idle",
	"gpu_hours_dark", "spend", "idle_spend", "paid_but_dark", "effective_price_per_used_gpu_hour",
	"gpu_hours_blind", "paid_but_blind"}

// WriteCSV writes one row per line (no total row, so spreadsheets can pivot
// it); money with six decimals: exact micro-units.
func WriteCSV(w io.Writer, r Report) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	for _, l := range r.Lines {
		eff := ""
		if l.HasEffective {
			eff = Amount(l.EffectivePPH, 6)
		}
		if err := cw.Write([]string{csvText(l.Group), csvText(l.Currency), GPUHours(l.LeasedGPUms), GPUHours(l.UsedGPUms),
			GPUHours(l.IdleGPUms), GPUHours(l.DarkGPUms), Amount(l.Spend, 6), Amount(l.IdleSpend, 6),
			Amount(l.DarkSpend, 6), eff, GPUHours(l.BlindGPUms), Amount(l.BlindSpend, 6)}); err != nil {
			return fmt.Errorf("write csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write csv: %w", err)
	}
	return nil
}

// csvText neutralises a text cell a spreadsheet would evaluate as a formula
// (OWASP CSV injection): a cell starting with =, +, -, @, tab or carriage
// return gets a leading single quote, which spreadsheets show as text and
// which keeps every character of the original. Node data (job, team, lease
// labels) reaches these cells, so a job named =HYPERLINK(...) must not run.
// Numeric cells are written by fleettop itself and are left alone.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// WriteMarkdown writes a GitHub-flavoured table with a total row; money
// with two decimals.
func WriteMarkdown(w io.Writer, r Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# fleettop cost report by %s\n\n", r.By)
	fmt.Fprintf(&b, "%s to %s (UTC, whole hours)\n\n", r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339))
	b.WriteString("| " + strings.ToUpper(r.By[:1]) + r.By[1:] + " | Currency | GPU-h leased | GPU-h used | GPU-h idle | GPU-h dark | Spend | Idle spend | Paid but dark | Per used GPU-h | GPU-h blind | Paid but blind |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	row := func(l Line, bold bool) {
		eff := "–"
		if l.HasEffective {
			eff = Amount(l.EffectivePPH, 2)
		}
		cells := []string{mdEscape(groupName(l.Group)), l.Currency, GPUHours(l.LeasedGPUms), GPUHours(l.UsedGPUms),
			GPUHours(l.IdleGPUms), GPUHours(l.DarkGPUms), Amount(l.Spend, 2), Amount(l.IdleSpend, 2),
			Amount(l.DarkSpend, 2), eff, GPUHours(l.BlindGPUms), Amount(l.BlindSpend, 2)}
		if bold {
			for i, c := range cells {
				cells[i] = "**" + c + "**"
			}
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	for _, l := range r.Lines {
		row(l, false)
	}
	if r.Total != nil {
		t := *r.Total
		t.Group = "Total"
		row(t, true)
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("write markdown: %w", err)
	}
	return nil
}

func groupName(g string) string {
	if g == "" {
		return "(none)"
	}
	return g
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

type jsonLine struct {
	Group          string  `json:"group"`
	Currency       string  `json:"currency"`
	GPUHoursLeased string  `json:"gpu_hours_leased"`
	GPUHoursUsed   string  `json:"gpu_hours_used"`
	GPUHoursIdle   string  `json:"gpu_hours_idle"`
	GPUHoursDark   string  `json:"gpu_hours_dark"`
	Spend          string  `json:"spend"`
	IdleSpend      string  `json:"idle_spend"`
	PaidButDark    string  `json:"paid_but_dark"`
	EffectivePrice *string `json:"effective_price_per_used_gpu_hour"`
	SpendMicros    int64   `json:"spend_micros"`
	IdleMicros     int64   `json:"idle_spend_micros"`
	DarkMicros     int64   `json:"paid_but_dark_micros"`
	// Paid but blind: the part of the dark figures on GPUs the leases bill
	// and no sensor sees.
	GPUHoursBlind string `json:"gpu_hours_blind"`
	PaidButBlind  string `json:"paid_but_blind"`
	BlindMicros   int64  `json:"paid_but_blind_micros"`
}

func toJSON(l Line) jsonLine {
	j := jsonLine{Group: l.Group, Currency: l.Currency, GPUHoursLeased: GPUHours(l.LeasedGPUms),
		GPUHoursUsed: GPUHours(l.UsedGPUms), GPUHoursIdle: GPUHours(l.IdleGPUms), GPUHoursDark: GPUHours(l.DarkGPUms),
		Spend: Amount(l.Spend, 6), IdleSpend: Amount(l.IdleSpend, 6), PaidButDark: Amount(l.DarkSpend, 6),
		SpendMicros: l.Spend, IdleMicros: l.IdleSpend, DarkMicros: l.DarkSpend,
		GPUHoursBlind: GPUHours(l.BlindGPUms), PaidButBlind: Amount(l.BlindSpend, 6), BlindMicros: l.BlindSpend}
	if l.HasEffective {
		e := Amount(l.EffectivePPH, 6)
		j.EffectivePrice = &e
	}
	return j
}

// WriteJSON writes the report as one JSON object; amounts are decimal
// strings (exact) with their micro-unit integers alongside.
func WriteJSON(w io.Writer, r Report) error {
	out := struct {
		By    string     `json:"by"`
		From  time.Time  `json:"from"`
		To    time.Time  `json:"to"`
		Lines []jsonLine `json:"lines"`
		Total *jsonLine  `json:"total,omitempty"`
	}{By: r.By, From: r.From.UTC(), To: r.To.UTC(), Lines: []jsonLine{}}
	for _, l := range r.Lines {
		out.Lines = append(out.Lines, toJSON(l))
	}
	if r.Total != nil {
		t := toJSON(*r.Total)
		out.Total = &t
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
