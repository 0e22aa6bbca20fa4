package kb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ErrDuplicateKey: two files of one import have the same key.
var ErrDuplicateKey = errors.New("kb: two files have the same key")

// ImportResult counts what an import did.
type ImportResult struct {
	Created   int `json:"created"`
	Updated   int `json:"updated"`
	Unchanged int `json:"unchanged"`
	// Keys are the keys of the imported documents, sorted.
	Keys []string `json:"keys"`
}

// Total is the number of documents imported.
func (r ImportResult) Total() int { return r.Created + r.Updated + r.Unchanged }

// ImportDir imports the Markdown files (*.md, *.markdown) under dir and its
// subdirectories into s. See ImportFS.
func ImportDir(ctx context.Context, s *Store, dir string) (ImportResult, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return ImportResult{}, fmt.Errorf("kb: import %s: %w", dir, err)
	}
	if !info.IsDir() {
		return ImportResult{}, fmt.Errorf("kb: import %s: not a directory", dir)
	}
	return ImportFS(ctx, s, os.DirFS(dir))
}

// ImportFS imports the Markdown files (*.md, *.markdown) of fsys, at any
// depth, into s. Each file becomes one document, parsed by ParseMarkdown:
// its key is the file's name without the extension, so importing the same
// files again updates the documents rather than adding new ones.
//
// Every file is parsed before anything is written: a file that cannot be
// parsed, or two files with the same key, fail the import with nothing
// stored. Documents in s that have no file are left alone.
func ImportFS(ctx context.Context, s *Store, fsys fs.FS) (ImportResult, error) {
	var docs []Document
	files := map[string]string{} // key → file
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isMarkdown(p) {
			return nil
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		doc, err := ParseMarkdown(path.Base(p), data)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if other, ok := files[doc.Key]; ok {
			return fmt.Errorf("%w: %s and %s are both %q", ErrDuplicateKey, other, p, doc.Key)
		}
		files[doc.Key] = p
		docs = append(docs, doc)
		return nil
	})
	if err != nil {
		return ImportResult{}, fmt.Errorf("kb: import: %w", err)
	}
	var res ImportResult
	for _, doc := range docs {
		up, err := s.Upsert(ctx, doc)
		if err != nil {
			return res, fmt.Errorf("kb: import %s: %w", files[doc.Key], err)
		}
		switch {
		case up.Created:
			res.Created++
		case up.Changed:
			res.Updated++
		default:
			res.Unchanged++
		}
		res.Keys = append(res.Keys, doc.Key)
	}
	sort.Strings(res.Keys)
	return res, nil
}

func isMarkdown(p string) bool {
	ext := strings.ToLower(path.Ext(p))
	return ext == ".md" || ext == ".markdown"
}

// frontMatter is the YAML block that may open a Markdown file.
type frontMatter struct {
	Title string  `yaml:"title"`
	Tags  tagList `yaml:"tags"`
}

// tagList reads tags written as a YAML list (tags: [a, b]) or as one
// comma-separated string (tags: a, b).
type tagList []string

func (t *tagList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*t = strings.Split(n.Value, ",")
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*t = list
	return nil
}

// ParseMarkdown makes a document of a Markdown file called name.
//
//   - Key: the file name without its extension, lowercased
//     ("Double-Charge.md" → "double-charge").
//   - Front matter: an optional YAML block between "---" lines at the very
//     top, with title and tags (tags: [billing, refunds]).
//   - Title: the front matter's title, or else the text of the first
//     "# " heading, which is then taken out of the body.
//   - Body: the rest of the file.
//
// A file with neither a title in its front matter nor a "# " heading, or
// with front matter that is not valid YAML, returns an error matching
// ErrInvalidDocument.
func ParseMarkdown(name string, data []byte) (Document, error) {
	key := strings.ToLower(strings.TrimSuffix(path.Base(name), path.Ext(name)))
	text := strings.ReplaceAll(string(bytes.TrimPrefix(data, []byte("\ufeff"))), "\r\n", "\n")

	var fm frontMatter
	if rest, ok := strings.CutPrefix(text, "---\n"); ok {
		end, closing := strings.Index(rest, "\n---\n"), len("\n---\n")
		switch {
		case strings.HasPrefix(rest, "---\n"): // empty front matter
			end, closing = 0, len("---\n")
		case end < 0 && strings.HasSuffix(rest, "\n---"):
			end, closing = len(rest)-len("\n---"), len("\n---")
		}
		if end < 0 {
			return Document{}, fmt.Errorf("%w: %s: front matter has no closing ---", ErrInvalidDocument, name)
		}
		if err := yaml.Unmarshal([]byte(rest[:end]), &fm); err != nil {
			return Document{}, fmt.Errorf("%w: %s: front matter: %v", ErrInvalidDocument, name, err)
		}
		text = rest[end+closing:]
	}

	title := strings.TrimSpace(fm.Title)
	if title == "" {
		lines := strings.Split(text, "\n")
		inFence := false
		for i, line := range lines {
			trimmed := strings.TrimSpace(line)
			if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
				inFence = !inFence
			}
			if h, ok := strings.CutPrefix(line, "# "); ok && !inFence {
				title = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(h), "#"))
				text = strings.Join(append(lines[:i:i], lines[i+1:]...), "\n")
				break
			}
		}
	}
	if title == "" {
		return Document{}, fmt.Errorf("%w: %s: no title (add a \"# \" heading or title: in front matter)", ErrInvalidDocument, name)
	}
	doc, err := normalize(Document{Key: key, Title: title, Body: text, Tags: fm.Tags})
	if err != nil {
		return Document{}, fmt.Errorf("%s: %w", name, err)
	}
	return doc, nil
}
